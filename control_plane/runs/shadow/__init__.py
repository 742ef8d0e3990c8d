"""Shadow traffic: a label's shadow candidate runs on a copy of the inputs of some of the
label's requests after they were answered; its output reaches no caller. ``service`` starts and
stops it (audited), ``dispatch`` runs the mirrored requests off the request path, bounded in
queue and cost, ``comparison`` pairs each served run with its shadow run."""
