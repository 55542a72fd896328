// The resolve hook registered by use-this-sdk.mjs: `@workos-inc/node` (and its subpaths) are
// resolved as if imported from this folder; every other specifier resolves as usual.

const fromThisFolder = new URL('./package.json', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@workos-inc/node' || specifier.startsWith('@workos-inc/node/')) {
    return nextResolve(specifier, { ...context, parentURL: fromThisFolder });
  }
  return nextResolve(specifier, context);
}
