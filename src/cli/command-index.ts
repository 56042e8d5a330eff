/**
 * The full list of commands, nested ones included: commander's help shows one level, and an
 * operator looking for `imgcrypt decrypt` should find it in `outrigger --help`.
 */
import type { Command } from 'commander';

export interface CommandEntry {
  readonly path: string;
  readonly summary: string;
}

interface HelpFlags {
  readonly _hidden?: boolean;
}

export function listCommands(root: Command): CommandEntry[] {
  const entries: CommandEntry[] = [];
  const walk = (cmd: Command, prefix: string): void => {
    for (const sub of cmd.commands) {
      if ((sub as unknown as HelpFlags)._hidden) continue;
      const path = prefix ? `${prefix} ${sub.name()}` : sub.name();
      if (sub.commands.length > 0) walk(sub, path);
      else entries.push({ path, summary: sub.description() });
    }
  };
  walk(root, '');
  return entries;
}

export function formatCommandIndex(root: Command): string {
  const entries = listCommands(root);
  const width = Math.max(...entries.map((e) => e.path.length));
  const lines = entries.map((e) => `  ${root.name()} ${e.path.padEnd(width)}  ${e.summary}`);
  return `\nAll commands:\n${lines.join('\n')}\n`;
}
