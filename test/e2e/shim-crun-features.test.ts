/**
 * The terminal, exec, pause/resume/update, stats and OOM scenarios with crun as the OCI runtime:
 * our shim gets crun the way an operator configures it (a runtime options TOML with
 * `BinaryName = "crun"` and its own `Root`, through ctr's --runtime-config-path), the stock
 * io.containerd.runc.v2 gets `--runc-binary crun` with a Root of its own, and every scenario
 * asserts the outcome for ours and then that the stock shim with crun gives the same record.
 * The scenarios are the ones the runc tests run (shim-scenarios.ts). While each container runs,
 * `crun state` under that shim's crun Root is asked too (and runc's default root is checked to
 * hold nothing), so a scenario passing through runc by mistake would fail.
 *
 * Host: cgroup v1 "hybrid"; crun runs here because scripts/setup-host mounts every controller
 * the cgroup2 hierarchy would otherwise offer (hugetlb) as v1, as systemd does.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useContainerd } from './harness.ts';
import { expectRealV1Metrics, metricsOf, oomRun, pauseScenario, apartFromOom, ttyExec, ttyRun, updateScenario } from './shim-scenarios.ts';
import { OUTRIGGER, RUNC_V2, expectNoShimLeftovers, pinnedShimBinDir, removeTask, type RuntimeChoice, startDetached, useTestImage } from './shim-support.ts';

const OURS_CRUN_ROOT = '/run/containerd/outrigger-crun-features';
const STOCK_CRUN_ROOT = '/run/containerd/runc-v2-crun-features';
const RUNC_ROOT = '/run/containerd/runc';
const image = useTestImage();
const ctd = useContainerd({
  binDirs: [pinnedShimBinDir()],
  ociRuntimes: [
    { binary: '/usr/sbin/runc', rootBase: RUNC_ROOT },
    { binary: '/usr/bin/crun', rootBase: OURS_CRUN_ROOT },
    { binary: '/usr/bin/crun', rootBase: STOCK_CRUN_ROOT },
  ],
});

/** Our shim with crun, through the runtime options file an operator writes. */
function ours(): RuntimeChoice {
  const config = path.join(ctd().dir, 'crun.toml');
  if (!fs.existsSync(config)) fs.writeFileSync(config, `BinaryName = "crun"\nRoot = "${OURS_CRUN_ROOT}"\n`);
  return { runtime: OUTRIGGER, flags: ['--runtime-config-path', config] };
}

/** io.containerd.runc.v2 with crun, through its own options. */
const stock: RuntimeChoice = { runtime: RUNC_V2, flags: ['--runc-binary', 'crun', '--runc-root', STOCK_CRUN_ROOT] };

/**
 * What crun itself says of a container under `rootBase` (its `state` status, or that it does
 * not know it), and whether runc's default root has an entry for it.
 */
function crunSees(rootBase: string): (id: string) => { crun: string; inRuncRoot: boolean } {
  return (id) => {
    const ns = ctd().namespace;
    let crun: string;
    try {
      crun = (JSON.parse(execFileSync('crun', ['--root', `${rootBase}/${ns}`, 'state', id], { encoding: 'utf8' })) as { status: string }).status;
    } catch {
      crun = 'unknown to crun';
    }
    return { crun, inRuncRoot: fs.existsSync(path.join(RUNC_ROOT, ns, id)) };
  };
}
const RUNNING = { crun: 'running', inRuncRoot: false };

/** Exec without a terminal: stdout, stderr and exit code apart, piped stdin, exec ids in ps. */
async function execScenario(choice: RuntimeChoice, observe: (id: string) => unknown): Promise<Record<string, unknown>> {
  const c = ctd();
  const id = await startDetached(c, image().name, choice, 'exec');
  const observed = observe(id);
  const plain = await c.ctr(['tasks', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo from-exec; echo exec-err >&2; exit 3']);
  const piped = await c.ctr(['tasks', 'exec', '--exec-id', 'e-in', id, 'cat'], { input: 'to exec\n' });
  await c.ctr(['tasks', 'exec', '-d', '--exec-id', 'bg', id, 'sleep', '1000'], { check: true });
  const ps = (await c.ctr(['tasks', 'ps', id], { check: true })).stdout.trim().split('\n').slice(1);
  await removeTask(c, id);
  const pick = (r: { stdout: string; stderr: string; exitCode: number }) => ({ stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode });
  return { plain: pick(plain), piped: pick(piped), psRows: ps.length, execRows: ps.filter((r) => r.includes('ExecID:bg')).length, observed };
}

describe('crun through runtime options: tty, exec, pause/resume/update, stats, OOM as under runc.v2 with crun', () => {
  it('imports the test image', async () => {
    await ctd().importImage(image().file);
  });

  it('ctr run -t on a real pty: start size, resize, typed input, exit code', async () => {
    const o = await ttyRun(ctd(), image().name, ours(), crunSees(OURS_CRUN_ROOT));
    const s = await ttyRun(ctd(), image().name, stock, crunSees(STOCK_CRUN_ROOT));
    // The container's pty echoes the typed line.
    expect(o).toEqual({ exitCode: 3, text: 'size 24 80\nsize 33 101\nhello\ngot hello\n', observed: [RUNNING] });
    expect(s).toEqual(o);
  });

  it('ctr t exec -t on a real pty: start size, resize, typed input, exit code', async () => {
    const o = await ttyExec(ctd(), image().name, ours(), crunSees(OURS_CRUN_ROOT));
    const s = await ttyExec(ctd(), image().name, stock, crunSees(STOCK_CRUN_ROOT));
    expect(o).toEqual({ exitCode: 3, text: 'size 24 80\nsize 33 101\nhello\ngot hello\n', observed: [RUNNING] });
    expect(s).toEqual(o);
  });

  it('ctr t exec without a terminal: stdout, stderr, exit code, stdin, exec ids in ps', async () => {
    const o = await execScenario(ours(), crunSees(OURS_CRUN_ROOT));
    const s = await execScenario(stock, crunSees(STOCK_CRUN_ROOT));
    expect(o).toEqual({
      plain: { stdout: 'from-exec\n', stderr: 'exec-err\n', exitCode: 3 },
      piped: { stdout: 'to exec\n', stderr: '', exitCode: 0 },
      psRows: 2,
      execRows: 1,
      observed: RUNNING,
    });
    expect(s).toEqual(o);
  });

  it('pause → /tasks/paused, PAUSED, frozen; resume → /tasks/resumed, RUNNING; crun agrees', async () => {
    const o = await pauseScenario(ctd(), image().name, ours(), crunSees(OURS_CRUN_ROOT));
    const s = await pauseScenario(ctd(), image().name, stock, crunSees(STOCK_CRUN_ROOT));
    expect(o).toMatchObject({ pause: 0, paused: 'PAUSED', freezer: 'FROZEN', pauseAgain: true, execPaused: true, resume: 0, resumed: 'RUNNING', exec: 4 });
    expect(o.resumeRunning).toEqual([true, 'cannot resume a running process: unknown']);
    expect(o.topics).toEqual(['/tasks/create', '/tasks/start', '/tasks/paused', '/tasks/resumed', '/tasks/exec-added', '/tasks/exec-started', '/tasks/exit', '/tasks/exit', '/tasks/delete']);
    expect(o.observed).toEqual([RUNNING, { crun: 'paused', inRuncRoot: false }, RUNNING]);
    expect(s).toEqual(o);
  });

  it('Update: memory limit and CPU quota reach the cgroup through crun update', async () => {
    const o = await updateScenario(ctd(), image().name, ours(), crunSees(OURS_CRUN_ROOT));
    const s = await updateScenario(ctd(), image().name, stock, crunSees(STOCK_CRUN_ROOT));
    expect(o).toEqual({ mem: '', cpu: '', limit: String(64 * 1024 * 1024), quota: '50000', period: '100000', observed: [RUNNING] });
    expect(s).toEqual(o);
  });

  it('ctr t metrics: real numbers (cgroup v1), the same metrics as under runc.v2 with crun', async () => {
    const o = await metricsOf(ctd(), image().name, ours(), crunSees(OURS_CRUN_ROOT));
    const s = await metricsOf(ctd(), image().name, stock, crunSees(STOCK_CRUN_ROOT));
    expect(o.observed).toEqual([RUNNING]);
    expectRealV1Metrics(o, s);
  });

  it('OOM of the init under an 8 MB limit: /tasks/oom, then /tasks/exit with 137', async () => {
    const o = await oomRun(ctd(), image().name, ours());
    const s = await oomRun(ctd(), image().name, stock);
    expect(o).toEqual({ exitCode: 137, exitStatus: '137', topics: ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete'] });
    expect(apartFromOom(s)).toEqual(apartFromOom(o));
    console.log(`io.containerd.runc.v2 (crun) topics of an OOM-killed init: ${s.topics.join(' ')}`);
  });

  it('leaves no shim, mount, socket or crun/runc entry behind', async () => {
    await expectNoShimLeftovers(ctd());
  });
});
