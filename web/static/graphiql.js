// GraphiQL at /graphql (web/graphiql.html) from the vendored UMD builds in /vendor/graphiql/: queries
// and mutations go over HTTP to this page's URL, subscriptions over a WebSocket to the same path
// (graphql-transport-ws). The JSON in the Headers tab, e.g. {"Authorization": "Bearer <key>"}, goes with
// every HTTP request and, for subscriptions, in the WebSocket's connection_init payload. GraphiQL keeps
// the headers in memory only, like the dashboard's sign-in, so a reload forgets the key.
(function () {
  "use strict";

  const DEFAULT_QUERY = `# GraphiQL for the scheduler service, served from this server (no CDN).
#
# With authentication on, open the Headers tab below and enter
#   {"Authorization": "Bearer <your API key>"}
# It is sent with every request and in the subscriptions' connection_init.
#
# Run: Ctrl-Enter or the play button. Docs: the book icon on the left.

query RecentSchedules {
  schedules(first: 5) {
    totalCount
    edges { node { id name status } }
  }
}
`;

  const url = window.location.origin + window.location.pathname;
  const fetcher = GraphiQL.createFetcher({ url, subscriptionUrl: url.replace(/^http/, "ws") });

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: DEFAULT_QUERY,
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
    }),
  );
})();
