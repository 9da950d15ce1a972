"""The newsroom's pages, served by ``storymedia serve``: the producer's (``/``), the editor's
(``/stories/{id}``) and the operator's console (``/ops``), Vietnamese by default. Server-rendered
(Jinja2) with a little JavaScript of our own; libraries from the npm registry (``api.pages.assets``)."""
