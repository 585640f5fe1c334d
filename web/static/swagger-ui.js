// Swagger UI at /docs (web/docs.html) from the vendored bundle in /vendor/swagger-ui/. The options are
// FastAPI's defaults, except that validatorUrl is off: Swagger UI would otherwise fetch a badge from
// validator.swagger.io. "Authorize" takes the API key as a bearer token or an X-API-Key header.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
