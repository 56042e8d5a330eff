/**
 * Terminals (`-t`) under containerd-shim-outrigger-v2, side by side with io.containerd.runc.v2
 * in the same private containerd: ctr runs on a real pty held by the test, so everything a
 * user at a terminal sees is what is asserted: the size ctr sends at start (ResizePty), a
 * later resize (SIGWINCH → ResizePty → TIOCSWINSZ on the pty master), typed input reaching
 * the process, its exit code, and 10 MB of exec output arriving whole
 * (containerd's TestContainerExecLargeOutputWithTTY). The run -t and exec -t scenarios also
 * run with crun in shim-crun-features.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { useContainerd } from './harness.ts';
import { ctrOnPty } from './ctr-on-pty.ts';
import { ttyExec, ttyRun } from './shim-scenarios.ts';
import { OUTRIGGER, RUNC_V2, expectNoShimLeftovers, pinnedShimBinDir, removeTask, startDetached, useTestImage } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });

const BIG = 10 * 1024 * 1024;

async function largeExecOutput(runtime: string): Promise<{ exitCode: number; xs: number; other: number }> {
  const id = await startDetached(ctd(), image().name, runtime, 'big');
  const session = ctrOnPty(ctd(), ['tasks', 'exec', '-t', '--exec-id', 'big', id, 'sh', '-c', `head -c ${BIG} /dev/zero | tr '\\0' x`]);
  const { exitCode, output } = await session.done;
  const xs = output.reduce((n, b) => n + (b === 0x78 ? 1 : 0), 0);
  await removeTask(ctd(), id);
  return { exitCode, xs, other: output.length - xs };
}

describe('terminals (-t) compared with io.containerd.runc.v2', () => {
  it('imports the test image', async () => {
    await ctd().importImage(image().file);
  });

  it('ctr run -t: start size, resize, typed input and exit code as under runc.v2', async () => {
    const ours = await ttyRun(ctd(), image().name, OUTRIGGER);
    const stock = await ttyRun(ctd(), image().name, RUNC_V2);
    // The container's pty echoes the typed line.
    expect(ours.text).toBe('size 24 80\nsize 33 101\nhello\ngot hello\n');
    expect(ours.exitCode).toBe(3);
    expect(stock).toEqual(ours);
  });

  it('ctr t exec -t: start size, resize, typed input and exit code as under runc.v2', async () => {
    const ours = await ttyExec(ctd(), image().name, OUTRIGGER);
    const stock = await ttyExec(ctd(), image().name, RUNC_V2);
    expect(ours).toEqual({ exitCode: 3, text: 'size 24 80\nsize 33 101\nhello\ngot hello\n' });
    expect(stock).toEqual(ours);
  });

  it('ctr t exec -t: 10 MB of output arrives whole, as under runc.v2', async () => {
    const ours = await largeExecOutput(OUTRIGGER);
    const stock = await largeExecOutput(RUNC_V2);
    expect(ours).toEqual({ exitCode: 0, xs: BIG, other: 0 });
    expect(stock).toEqual(ours);
  });

  it('leaves no shim, mount, socket or runc entry behind', async () => {
    await expectNoShimLeftovers(ctd());
  });
});
