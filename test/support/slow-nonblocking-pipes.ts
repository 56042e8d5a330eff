/**
 * Runs a command with non-blocking pipes as stdin and stdout, fed by a slow writer and drained
 * by a slow reader: Node sets fds 0/1 O_NONBLOCK once anything touches process.stdin/stdout, and
 * a parent may hand non-blocking pipes over, so a processor's reads meet EAGAIN on an empty pipe
 * and its writes EAGAIN on a full one. What it wrote and its exit code come back.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';

const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_GETFL = 3;
const F_SETFL = 4;

export interface SlowPipeRun {
  readonly argv: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly input: Buffer;
  /** Bytes per write of the slow writer (2 ms apart). */
  readonly writeChunk: number;
  /** The reader's buffer size (1 ms pause after each read). */
  readonly readChunk: number;
}

export async function runThroughSlowNonBlockingPipes(run: SlowPipeRun): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const ffi = process.getBuiltinModule('node:ffi') as typeof import('node:ffi');
  const { functions: c } = ffi.dlopen(null, {
    pipe2: { return: 'i32', arguments: ['pointer', 'i32'] },
    fcntl: { return: 'i32', arguments: ['i32', 'i32', 'i32'] },
  } as const);
  const make = (): [number, number] => {
    const fds = new Int32Array(2);
    // O_CLOEXEC: the child must not inherit our ends, or its stdin never sees EOF.
    if (c.pipe2(fds, O_CLOEXEC) !== 0) throw new Error('pipe2 failed');
    return [fds[0]!, fds[1]!];
  };
  const nonBlocking = (fd: number) => {
    if (c.fcntl(fd, F_SETFL, c.fcntl(fd, F_GETFL, 0) | O_NONBLOCK) !== 0) throw new Error(`fcntl O_NONBLOCK on fd ${fd} failed`);
  };
  const [childIn, ourIn] = make();
  const [ourOut, childOut] = make();
  nonBlocking(childIn);
  nonBlocking(childOut);
  const [exe, ...args] = run.argv;
  const child = spawn(exe!, args, { stdio: [childIn, childOut, 'pipe'], ...(run.env ? { env: run.env } : {}) });
  const exited = once(child, 'exit') as Promise<[number | null]>;
  fs.closeSync(childIn);
  fs.closeSync(childOut);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const writer = fs.createWriteStream('', { fd: ourIn });
  const feeding = (async () => {
    for (let i = 0; i < run.input.length; i += run.writeChunk) {
      if (!writer.write(run.input.subarray(i, i + run.writeChunk))) await once(writer, 'drain');
      await new Promise((r) => setTimeout(r, 2));
    }
    writer.end();
  })();
  const parts: Buffer[] = [];
  for await (const chunk of fs.createReadStream('', { fd: ourOut, highWaterMark: run.readChunk })) {
    parts.push(chunk as Buffer);
    await new Promise((r) => setTimeout(r, 1));
  }
  await feeding;
  const [code] = await exited;
  return { code, stdout: Buffer.concat(parts), stderr };
}
