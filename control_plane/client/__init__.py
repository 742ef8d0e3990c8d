"""The Python client of the rollgraph API; the ``rollgraph`` command is built on it.

``SyncClient`` and ``AsyncClient`` answer the API's response models (``models``). Both send
the requests of ``calls`` through ``core``: retried only when that cannot do a thing twice, a
run under an ``Idempotency-Key`` (the caller's or the client's own), and a sync run waited for
as long as the server may run it.

```python
from control_plane.client import SyncClient

with SyncClient("http://127.0.0.1:8000", api_key) as rg:
    rg.apply(open("examples/product-video/v3.3.yaml").read())
    rg.promote("product-video", "v3.3", label="prod")
    print(rg.run("product-video", {"prompt": "a red sneaker"}).status)
```
"""

from control_plane.client import models
from control_plane.client.aio import AsyncClient
from control_plane.client.core import ApiError, NoAnswer, Retry
from control_plane.client.sync import SyncClient

__all__ = ["ApiError", "AsyncClient", "NoAnswer", "Retry", "SyncClient", "models"]
