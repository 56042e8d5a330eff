/**
 * Commands that every link name must reach but whose implementation lands in a later issue.
 * They are real entries in the tree (so dispatch and `--help` are testable) and fail with
 * ExitCode.unavailable and a message naming the issue, never a silent success.
 */
import type { Command } from 'commander';
import { CliError, ExitCode } from './exit-codes.ts';

export interface PlannedCommand {
  /** Space-separated path below `outrigger`, e.g. "imgcrypt decrypt". */
  readonly path: string;
  readonly summary: string;
  readonly issue: number;
  /** Accept any arguments unparsed (the shim takes Go-style single-dash flags from containerd). */
  readonly rawArgs?: boolean;
}

export const plannedCommands: readonly PlannedCommand[] = [
];

function groupCommand(parent: Command, name: string, summary: string): Command {
  const existing = parent.commands.find((c) => c.name() === name);
  if (existing) return existing;
  return parent.command(name).description(summary);
}

export function definePlanned(program: Command, planned: PlannedCommand): void {
  const parts = planned.path.split(' ');
  let parent = program;
  for (const group of parts.slice(0, -1)) {
    parent = groupCommand(parent, group, `${group} tools`);
  }
  const leaf = parts.at(-1)!;
  const cmd = parent.command(leaf).description(`${planned.summary} [issue #${planned.issue}, not in this build]`);
  if (planned.rawArgs) cmd.argument('[args...]').allowUnknownOption().allowExcessArguments();
  cmd.action(() => {
    throw new CliError(
      `'${planned.path}' is not part of this build yet (tracked in issue #${planned.issue})`,
      ExitCode.unavailable,
    );
  });
}
