// Loaded with `node --import ./use-this-sdk.mjs --test ../node/*.test.mjs` (the Rust test
// sdk_node does this): the test files of ../node, unchanged, import `@workos-inc/node` from this
// folder's node_modules (the newest release, pinned by package-lock.json) instead of their own.
//
// ES modules resolve a package from the importing file's own folder and ignore NODE_PATH, and
// Node resolves a symlinked test file to its real path, so neither can point the shared files at
// another copy of the SDK; a resolve hook can, for this one package only.

import { register } from 'node:module';

register('./resolve-sdk.mjs', import.meta.url);
