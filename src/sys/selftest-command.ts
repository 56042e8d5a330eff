import type { Command } from 'commander';
// Placeholder until src/sys lands in this same change.
export function defineSysSelftest(_program: Command): void {}
