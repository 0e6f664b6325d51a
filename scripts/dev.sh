#!/bin/sh
# The npm scripts' launcher: scripts/dev.mjs under .tools/'s Node 22 once it is there (one Node
# start for `npm run crucible`: dev.mjs then runs the CLI in its own process), else under the
# machine's Node, with which dev.mjs first brings Node 22 and pnpm into .tools/.
here=$(dirname "$0")
node22="$here/../.tools/node_modules/.bin/node"
if [ -x "$node22" ]; then exec "$node22" "$here/dev.mjs" "$@"; fi
exec node "$here/dev.mjs" "$@"
