/**
 * containerd starts shims with Go `flag`-style arguments: single dash, value in the next
 * argument (`-namespace ns -address /run/containerd/containerd.sock -id t1 -debug start`),
 * then the action as the first positional argument (shim-protocol.md §2.2). Go also accepts
 * `--flag` and `-flag=value`, so we do too. Without an action the process is the long-running
 * shim server. An unknown flag is a usage error (Go's flag package exits 2).
 */

export type ShimAction = 'start' | 'delete' | 'serve';

export interface ShimFlags {
  readonly namespace: string;
  readonly address: string;
  readonly publishBinary: string;
  readonly id: string;
  readonly bundle: string;
  readonly socket: string;
  readonly debug: boolean;
  readonly version: boolean;
  readonly help: boolean;
  readonly action: ShimAction;
}

export class ShimFlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShimFlagError';
  }
}

type StringFlag = 'namespace' | 'address' | 'publish-binary' | 'id' | 'bundle' | 'socket';
type BoolFlag = 'debug' | 'v' | 'help' | 'h';

const STRING_FLAGS: ReadonlySet<string> = new Set<StringFlag>(['namespace', 'address', 'publish-binary', 'id', 'bundle', 'socket']);
const BOOL_FLAGS: ReadonlySet<string> = new Set<BoolFlag>(['debug', 'v', 'help', 'h']);

function parseBool(name: string, value: string): boolean {
  // Go's strconv.ParseBool spellings.
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  throw new ShimFlagError(`invalid boolean value "${value}" for flag -${name}`);
}

export function parseShimFlags(argv: readonly string[]): ShimFlags {
  const strings = new Map<string, string>();
  const bools = new Map<string, boolean>();
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break; // first positional: the action
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    if (body === '' || body.startsWith('-') || body.startsWith('=')) throw new ShimFlagError(`bad flag syntax: ${arg}`);
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const inline = eq === -1 ? undefined : body.slice(eq + 1);
    if (STRING_FLAGS.has(name)) {
      let value = inline;
      if (value === undefined) {
        i++;
        value = argv[i];
        if (value === undefined) throw new ShimFlagError(`flag needs an argument: -${name}`);
      }
      strings.set(name, value);
    } else if (BOOL_FLAGS.has(name)) {
      bools.set(name, inline === undefined ? true : parseBool(name, inline));
    } else {
      throw new ShimFlagError(`flag provided but not defined: -${name}`);
    }
  }
  const positional = argv.slice(i);
  const first = positional[0];
  let action: ShimAction;
  if (first === undefined) action = 'serve';
  else if (first === 'start' || first === 'delete') action = first;
  else throw new ShimFlagError(`unknown action "${first}" (expected start, delete, or none to serve)`);
  if (positional.length > 1) throw new ShimFlagError(`unexpected arguments after ${first}: ${positional.slice(1).join(' ')}`);
  return {
    namespace: strings.get('namespace') ?? '',
    address: strings.get('address') ?? '',
    publishBinary: strings.get('publish-binary') ?? '',
    id: strings.get('id') ?? '',
    bundle: strings.get('bundle') ?? '',
    socket: strings.get('socket') ?? '',
    debug: bools.get('debug') ?? false,
    version: bools.get('v') ?? false,
    help: (bools.get('help') ?? false) || (bools.get('h') ?? false),
    action,
  };
}

/** Flags each action cannot do without, checked after -v/-help had their chance. */
export function requireFlags(flags: ShimFlags): void {
  const missing: string[] = [];
  if (flags.namespace === '') missing.push('-namespace');
  if (flags.id === '') missing.push('-id');
  if (flags.action !== 'serve' && flags.address === '') missing.push('-address');
  if (flags.action === 'serve' && flags.socket === '') missing.push('-socket');
  if (missing.length > 0) throw new ShimFlagError(`shim ${flags.action}: missing ${missing.join(', ')}`);
}

export const SHIM_USAGE = `Usage: outrigger shim [-namespace NS] [-address ADDR] [-publish-binary PATH] [-id ID] [-bundle DIR] [-debug] [-v] [start|delete]

containerd runtime v2 shim for io.containerd.outrigger.v2 (run by containerd as containerd-shim-outrigger-v2)

Flags (Go style, single dash, as containerd passes them):
  -namespace NS          containerd namespace of the task
  -address ADDR          containerd's gRPC socket path (part of the shim socket name)
  -publish-binary PATH   containerd binary (accepted, unused: events go to $TTRPC_ADDRESS)
  -id ID                 task id
  -bundle DIR            bundle directory (delete; start uses its working directory)
  -socket PATH           serve the task API on this socket (set by start for the daemon)
  -debug                 log at debug level
  -v                     print version information and exit

Actions:
  start                  start (or join) the shim daemon and print its address
  delete                 clean up after a dead shim and print a DeleteResponse
  (none)                 run the shim daemon
`;
