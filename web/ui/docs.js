// GET /docs: Swagger UI on envhub's own OpenAPI document (no inline script: the CSP allows none).
"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null,        // never ask an online validator
  tryItOutEnabled: false,
  persistAuthorization: false,
});
