// GET /redoc: ReDoc on envhub's own OpenAPI document (no inline script: the CSP allows none).
"use strict";
Redoc.init("/openapi.json", {
  hideDownloadButton: false,
  disableSearch: false,
  expandResponses: "200,201,202",
}, document.getElementById("redoc"));
