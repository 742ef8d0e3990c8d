// After `vite build`: copy Swagger UI's and ReDoc's bundles into the build (the server's /docs
// and /redoc load them from /console/vendor, never a CDN), then write sources.sha256, the digest
// of every file the build is made from; tests/test_console_build.py recomputes it, so a commit
// whose console sources differ from the committed build fails.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sourcesDigest } from "./sources.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "..", "control_plane", "console_dist");
const copies = [
  ["swagger-ui-dist/swagger-ui-bundle.js", "vendor/swagger-ui/swagger-ui-bundle.js"],
  ["swagger-ui-dist/swagger-ui.css", "vendor/swagger-ui/swagger-ui.css"],
  ["swagger-ui-dist/LICENSE", "vendor/swagger-ui/LICENSE"],
  ["redoc/bundles/redoc.standalone.js", "vendor/redoc/redoc.standalone.js"],
  ["redoc/LICENSE", "vendor/redoc/LICENSE"],
];
for (const [from, to] of copies) {
  mkdirSync(dirname(join(out, to)), { recursive: true });
  copyFileSync(join(root, "node_modules", from), join(out, to));
}
writeFileSync(join(out, "sources.sha256"), sourcesDigest(root) + "\n");
