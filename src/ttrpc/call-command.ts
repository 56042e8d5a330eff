/**
 * `outrigger ttrpc call SOCKET SERVICE/METHOD [json]`: one unary ttrpc call from the command
 * line, request given as protobuf JSON, response printed as protobuf JSON. Works against any
 * peer speaking a service in src/api (our shim, Go's runc shim, containerd's events socket).
 */
import type { Command } from 'commander';
import { CliError, ExitCode } from '../cli/exit-codes.ts';

interface CallFlags {
  readonly timeout: string;
  readonly metadata: string[];
}

export function defineTtrpcCall(program: Command): void {
  const group = program.commands.find((c) => c.name() === 'ttrpc') ?? program.command('ttrpc').description('ttrpc tools');
  group
    .command('call')
    .description('call SERVICE/METHOD on a ttrpc unix socket with a JSON request; print the JSON response')
    .argument('<socket>', 'socket path or unix:// address (e.g. the `address` file of a shim bundle)')
    .argument('<method>', 'full method name, e.g. containerd.task.v2.Task/State')
    .argument('[json]', "request as protobuf JSON, '-' to read stdin", '{}')
    .option('--timeout <ms>', 'deadline sent as timeout_nano and enforced locally', '10000')
    .option('-m, --metadata <key=value>', 'request metadata, repeatable', (v: string, acc: string[]) => [...acc, v], [])
    .action(async (socket: string, method: string, json: string, flags: CallFlags) => {
      // Loaded here so that other commands do not pay for the schema registry at start-up.
      const { runTtrpcCall } = await import('./json-call.ts');
      const timeoutMs = Number(flags.timeout);
      if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new CliError(`--timeout must be a positive number of milliseconds, not "${flags.timeout}"`, ExitCode.usage);
      const metadata: Record<string, string[]> = {};
      for (const kv of flags.metadata) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new CliError(`--metadata wants key=value, not "${kv}"`, ExitCode.usage);
        (metadata[kv.slice(0, eq)] ??= []).push(kv.slice(eq + 1));
      }
      const requestJson = json === '-' ? await readStdin() : json;
      const out = await runTtrpcCall({ socket, method, requestJson, timeoutMs, metadata });
      process.stdout.write(`${out}\n`);
    });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
