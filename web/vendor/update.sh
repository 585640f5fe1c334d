#!/bin/sh
# Refresh the vendored browser assets in this folder from the npm registry (`npm pack`, no install,
# no build): GraphiQL with React for /graphql, Swagger UI for /docs. Edit the versions, run
# `sh web/vendor/update.sh`, then run the browser tests in tests/web/.
set -eu

GRAPHIQL=3.8.3          # the version Strawberry's own GraphiQL page names; graphiql 5 has no UMD build
REACT=18.3.1            # react and react-dom 18 ship UMD builds (19 does not)
SWAGGER_UI=5.36.0

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

unpack() {  # unpack NAME VERSION: the package's files end up in $work/NAME/
    (cd "$work" && npm pack --silent "$1@$2" >/dev/null)
    mkdir -p "$work/$1"
    tar -xzf "$work/$1-$2.tgz" -C "$work/$1" --strip-components=1
}

unpack graphiql "$GRAPHIQL"
unpack react "$REACT"
unpack react-dom "$REACT"
unpack swagger-ui-dist "$SWAGGER_UI"

g="$here/graphiql"
rm -rf "$g" && mkdir -p "$g"
cp "$work/graphiql/graphiql.min.js" "$work/graphiql/graphiql.min.css" "$g/"
cp "$work/graphiql/LICENSE" "$g/LICENSE-graphiql"
cp "$work/react/umd/react.production.min.js" "$g/"
cp "$work/react/LICENSE" "$g/LICENSE-react"
cp "$work/react-dom/umd/react-dom.production.min.js" "$g/"
cp "$work/react-dom/LICENSE" "$g/LICENSE-react-dom"

s="$here/swagger-ui"
rm -rf "$s" && mkdir -p "$s"
cp "$work/swagger-ui-dist/swagger-ui-bundle.js" "$work/swagger-ui-dist/swagger-ui-bundle.js.LICENSE.txt" \
    "$work/swagger-ui-dist/swagger-ui.css" "$work/swagger-ui-dist/favicon-32x32.png" \
    "$work/swagger-ui-dist/LICENSE" "$work/swagger-ui-dist/NOTICE" "$s/"

cat > "$here/VERSIONS" <<VERSIONS
graphiql $GRAPHIQL
react $REACT
react-dom $REACT
swagger-ui-dist $SWAGGER_UI
VERSIONS
echo "vendored: graphiql $GRAPHIQL, react/react-dom $REACT, swagger-ui-dist $SWAGGER_UI"
