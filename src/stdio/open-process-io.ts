/**
 * Picks the stdio transport from the request, as the Go shim does (shim-protocol.md §4.1): all
 * empty means null IO; otherwise only the stdout URI's scheme decides. Plain paths and fifo://
 * are FIFOs. file:// and binary:// are another issue's and are refused by name until then.
 */
import { FifoIo } from './fifo-io.ts';
import { NullIo } from './null-io.ts';
import type { ProcessIo, StdioOwner, StdioRequest } from './process-io.ts';
import { StdioError } from './process-io.ts';

export function stdioScheme(stdout: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(stdout);
  return m ? m[1]!.toLowerCase() : 'fifo';
}

function fifoPath(uri: string): string {
  return uri.startsWith('fifo://') ? uri.slice('fifo://'.length) : uri;
}

export function openProcessIo(req: StdioRequest, owner?: StdioOwner): ProcessIo {
  if (req.terminal) throw new StdioError('terminal (tty) stdio is not supported by this build of the shim yet');
  if (req.stdin === '' && req.stdout === '' && req.stderr === '') return new NullIo();
  const scheme = stdioScheme(req.stdout);
  if (scheme === 'fifo') {
    return FifoIo.open({ ...req, stdin: fifoPath(req.stdin), stdout: fifoPath(req.stdout), stderr: fifoPath(req.stderr) }, owner);
  }
  throw new StdioError(`unknown STDIO scheme ${scheme}`);
}
