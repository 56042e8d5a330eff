import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { escapeXml, niceCeil, renderBarChart, type Bar } from '../scripts/bench/chart-svg.ts';
import { measuredRun } from '../scripts/bench/measured-spawn.ts';
import type { MachineFacts, PrintedMetric, SizeResult, TimedBenchmark, TimedResult, VariantResult } from '../scripts/bench/model.ts';
import { PINNED_NODE, ROOT } from '../scripts/bench/paths.ts';
import { cpuMsFromStat, processCpuMs } from '../scripts/bench/process-cpu.ts';
import { cell, formatMetric, renderReport } from '../scripts/bench/report-markdown.ts';
import { resultChartSvg } from '../scripts/bench/result-chart.ts';
import { describeEnv, displayCommand, interleavedOrder, parsePrintedMetrics, resolveEnv, runTimed } from '../scripts/bench/runner.ts';
import { median, quantile, ratio, summarize } from '../scripts/bench/stats.ts';

const samples = fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 200 });

describe('stats', () => {
  it('orders min ≤ median ≤ p90 ≤ max, all within the observed range', () => {
    fc.assert(
      fc.property(samples, (xs) => {
        const s = summarize(xs);
        expect(s.n).toBe(xs.length);
        expect(s.min).toBe(Math.min(...xs));
        expect(s.max).toBe(Math.max(...xs));
        expect(s.min).toBeLessThanOrEqual(s.median);
        expect(s.median).toBeLessThanOrEqual(s.p90);
        expect(s.p90).toBeLessThanOrEqual(s.max);
      }),
    );
  });

  it('does not depend on the order of the samples', () => {
    fc.assert(
      fc.property(samples, fc.integer(), (xs, seed) => {
        const shuffled = [...xs].sort((a, b) => Math.sin(a * 7 + seed) - Math.sin(b * 7 + seed));
        expect(summarize(shuffled)).toEqual(summarize(xs));
      }),
    );
  });

  it('median splits the samples in half; an odd count gives an observed value', () => {
    fc.assert(
      fc.property(samples, (xs) => {
        const m = median(xs);
        expect(xs.filter((x) => x <= m).length).toBeGreaterThanOrEqual(xs.length / 2);
        expect(xs.filter((x) => x >= m).length).toBeGreaterThanOrEqual(xs.length / 2);
        if (xs.length % 2 === 1) expect(xs).toContain(m);
      }),
    );
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it('quantile is the nearest-rank sample: observed, with at least q of the samples at or below it', () => {
    fc.assert(
      fc.property(samples, fc.double({ min: 0.01, max: 1, noNaN: true }), (xs, q) => {
        const v = quantile(xs, q);
        expect(xs).toContain(v);
        expect(xs.filter((x) => x <= v).length).toBeGreaterThanOrEqual(q * xs.length - 1e-9);
        expect(xs.filter((x) => x < v).length).toBeLessThan(q * xs.length + 1e-9);
      }),
    );
    expect(quantile([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], 0.9)).toBe(9);
    expect(quantile([1, 2, 3], 1)).toBe(3);
  });

  it('rejects empty, non-finite and out-of-range input with a message', () => {
    expect(() => median([])).toThrow(/no samples/);
    expect(() => summarize([1, Number.NaN])).toThrow(/not a finite number/);
    expect(() => quantile([1], 0)).toThrow(/outside/);
    expect(() => quantile([1], 1.5)).toThrow(/outside/);
  });

  it('ratio divides ours by peer and has no value for a zero peer', () => {
    expect(ratio(45, 30)).toBe(1.5);
    expect(ratio(1, 0)).toBeUndefined();
  });
});

describe('interleavedOrder', () => {
  it('rotates the variants by one each round', () => {
    expect(interleavedOrder(3, 4)).toEqual([
      [0, 1, 2],
      [1, 2, 0],
      [2, 0, 1],
      [0, 1, 2],
    ]);
    expect(interleavedOrder(2, 0)).toEqual([]);
  });

  it('runs every variant once per round and puts each in every position equally often', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 6 }), (n, cycles) => {
        const order = interleavedOrder(n, n * cycles);
        expect(order).toHaveLength(n * cycles);
        for (const round of order) expect([...round].sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
        for (let pos = 0; pos < n; pos++) {
          for (let v = 0; v < n; v++) expect(order.filter((round) => round[pos] === v)).toHaveLength(cycles);
        }
      }),
    );
  });

  it('rejects a non-positive variant count or a bad round count', () => {
    expect(() => interleavedOrder(0, 3)).toThrow(/variant count/);
    expect(() => interleavedOrder(2, -1)).toThrow(/rounds/);
    expect(() => interleavedOrder(2, 1.5)).toThrow(/rounds/);
  });
});

describe('environment and command display', () => {
  it('applies layers in order; null removes a variable', () => {
    const env = resolveEnv({ A: '1', B: '2', C: undefined }, { B: null, D: 'x' }, { D: 'y', A: null });
    expect(env).toEqual({ D: 'y' });
    expect(resolveEnv({ NODE_EXTRA_CA_CERTS: '/x' }, { NODE_EXTRA_CA_CERTS: null }, { NODE_EXTRA_CA_CERTS: '/y' })).toEqual({ NODE_EXTRA_CA_CERTS: '/y' });
  });

  it('describes overrides, the later layer winning', () => {
    expect(describeEnv({ NODE_EXTRA_CA_CERTS: null }, undefined)).toBe('NODE_EXTRA_CA_CERTS unset');
    expect(describeEnv({ A: null }, { A: '1', B: '2' })).toBe('A=1, B=2');
    expect(describeEnv(undefined)).toBeUndefined();
  });

  it('shows repository paths relative to the root and quotes what a shell would split', () => {
    expect(displayCommand(['/repo/dist/bin/outrigger', '--version'], '/repo')).toBe('dist/bin/outrigger --version');
    expect(displayCommand(['/bin/sh', '-c', "echo 'hi' there"], '/repo')).toBe(`/bin/sh -c 'echo '\\''hi'\\'' there'`);
    expect(displayCommand(['/repository/x'], '/repo')).toBe('/repository/x');
  });
});

describe('measuredRun (real processes through GNU time)', () => {
  it('measures a command: positive wall and CPU time, and the peak RSS of the command, not of this process', () => {
    const m = measuredRun(['/bin/true'], { PATH: '/usr/bin:/bin' });
    expect(m.wallMs).toBeGreaterThan(0);
    expect(m.cpuMs).toBeGreaterThanOrEqual(0);
    expect(m.maxRssKiB).toBeGreaterThan(0);
    // posix_spawn's vfork would report this test process's peak (tens of MB) for the child.
    expect(m.maxRssKiB * 1024).toBeLessThan(process.memoryUsage().rss / 2);
  });

  it('reports a command that uses more memory as bigger', () => {
    const small = measuredRun(['/bin/true'], { PATH: '/usr/bin:/bin' });
    // dd reads into one 64 MiB buffer, so all of it becomes resident.
    const big = measuredRun(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], { PATH: '/usr/bin:/bin' });
    expect(big.maxRssKiB).toBeGreaterThan(small.maxRssKiB + 20_000);
  });

  it('fails with the command and its exit code or signal', () => {
    expect(() => measuredRun(['/bin/sh', '-c', 'exit 3'], { PATH: '/usr/bin:/bin' })).toThrow(/`\/bin\/sh -c exit 3` ended with exit code 3/);
    expect(() => measuredRun(['/nonexistent/cmd'], { PATH: '/usr/bin:/bin' })).toThrow(/ended with exit code 127/);
  });
});

describe('chart SVG', () => {
  const format = (v: number): string => `${v.toFixed(1)} ms`;

  /** Every opened element is closed in order: the SVG is well-formed enough for a browser. */
  function assertBalanced(svg: string): void {
    const stack: string[] = [];
    for (const m of svg.matchAll(/<(\/?)([a-z]+)[^>]*?(\/?)>/g)) {
      const [, closing, name, selfClosing] = m;
      if (selfClosing) continue;
      if (closing) expect(stack.pop()).toBe(name);
      else stack.push(name!);
    }
    expect(stack).toEqual([]);
    expect(svg.replace(/<[^>]*>/g, '')).not.toMatch(/[<>]/);
  }

  function barWidths(svg: string): number[] {
    return [...svg.matchAll(/class="bar"[^>]*width="([\d.]+)"/g)].map((m) => Number(m[1]));
  }

  it('draws one bar per entry, lengths proportional to the values, labels escaped', () => {
    const svg = renderBarChart({
      title: 'Start-up <&> "quotes"',
      axis: 'ms',
      format,
      bars: [
        { label: 'ours & co', value: 40, low: 30, high: 45, role: 'ours' },
        { label: 'peer <node>', value: 20, role: 'peer' },
        { label: '/bin/true', value: 10, role: 'other' },
      ],
    });
    assertBalanced(svg);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('ours &amp; co');
    expect(svg).toContain('peer &lt;node&gt;');
    expect(svg).toContain('Start-up &lt;&amp;&gt; &quot;quotes&quot;');
    expect(svg).toContain('40.0 ms');
    const [a, b, c] = barWidths(svg);
    expect(a! / b!).toBeCloseTo(2, 1);
    expect(b! / c!).toBeCloseTo(2, 1);
    expect(svg).toContain('#d9480f'); // ours
    expect(svg).toContain('#1971c2'); // peer
  });

  it('stays finite and within the plot for any non-negative values', () => {
    const bar = fc.record({
      label: fc.string({ maxLength: 40 }),
      value: fc.double({ min: 0, max: 1e9, noNaN: true }),
      role: fc.constantFrom('ours', 'peer', 'other'),
    }) as fc.Arbitrary<Bar>;
    fc.assert(
      fc.property(fc.array(bar, { minLength: 1, maxLength: 12 }), (bars) => {
        const svg = renderBarChart({ title: 't', axis: 'a', format, bars });
        // Numbers only: a label may itself spell "NaN".
        expect(svg).not.toMatch(/="[^"]*(NaN|Infinity)[^"]*"/);
        assertBalanced(svg);
        const widths = barWidths(svg);
        expect(widths).toHaveLength(bars.length);
        for (const w of widths) expect(w).toBeLessThanOrEqual(460.05);
      }),
    );
  });

  it('rejects negative or non-finite values', () => {
    expect(() => renderBarChart({ title: 't', axis: 'a', format, bars: [{ label: 'x', value: -1, role: 'ours' }] })).toThrow(/"x"/);
    expect(() => renderBarChart({ title: 't', axis: 'a', format, bars: [{ label: 'y', value: 1, high: Number.NaN, role: 'ours' }] })).toThrow(/"y"/);
  });

  it('niceCeil gives the next 1/2/2.5/5 step at or above the value', () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-6, max: 1e12, noNaN: true }), (v) => {
        const n = niceCeil(v);
        expect(n).toBeGreaterThanOrEqual(v * (1 - 1e-9));
        expect(n).toBeLessThanOrEqual(v * 2.5 * (1 + 1e-9));
        const mantissa = n / 10 ** Math.floor(Math.log10(n) + 1e-12);
        expect([1, 2, 2.5, 5].some((m) => Math.abs(mantissa - m) < 1e-9)).toBe(true);
      }),
    );
    expect(niceCeil(0)).toBe(1);
    expect(niceCeil(37.9)).toBe(50);
  });

  it('escapeXml escapes the five XML specials', () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
  });
});

describe('markdown report', () => {
  const machine: MachineFacts = {
    cpu: 'Test CPU',
    cores: 2,
    memoryGiB: 23,
    kernel: '6.18.44',
    os: 'Debian GNU/Linux 12 (bookworm)',
    node: 'v26.10.0',
    date: '2026-11-22T07:00:00Z',
  };
  const summary = (median: number) => ({ n: 10, min: median - 1, median, p90: median + 2, max: median + 3 });
  const variant = (label: string, wall: number, extra: Partial<VariantResult> = {}): VariantResult => ({
    label,
    command: `cmd-${label}`,
    wallMs: summary(wall),
    cpuMs: summary(wall - 1),
    maxRssKiB: summary(40_960),
    ...extra,
  });
  const timed: TimedResult = {
    kind: 'timed',
    name: 'startup',
    title: 'Start-up',
    what: 'What it measures.',
    ours: 'sea | ours',
    peer: 'node -e 0',
    machine,
    quick: false,
    env: 'NODE_EXTRA_CA_CERTS unset',
    rounds: 10,
    warmupRounds: 2,
    load: [0.5, 0.75],
    variants: [variant('sea | ours', 45, { output: 'outrigger 0.1.0', note: 'the binary' }), variant('node -e 0', 30), variant('/bin/true', 2)],
  };
  const size: SizeResult = {
    kind: 'size',
    name: 'binary-size',
    title: 'Binary size',
    what: 'Bytes.',
    ours: 'SEA',
    peer: 'Go shim',
    machine: { ...machine, date: '2026-11-22T06:00:00Z', kernel: '6.1.0' },
    quick: true,
    items: [
      { label: 'SEA', bytes: 116_000_000 },
      { label: 'SEA, zstd -19', bytes: null, note: 'skipped' },
      { label: 'Go shim', bytes: 11_600_000 },
    ],
  };
  const md = renderReport([timed, size], (name) => `bench/${name}.svg`);

  it('starts with the machine facts of the newest result', () => {
    expect(md.startsWith('# Benchmarks\n')).toBe(true);
    expect(md).toContain('| CPU | Test CPU |');
    expect(md).toContain('| cores | 2 |');
    expect(md).toContain('| kernel | 6.18.44 |');
    expect(md).toContain('| date | 2026-11-22T07:00:00Z |');
  });

  it('renders a timed section: one row per variant, roles marked, ratio to the peer, chart link', () => {
    expect(md).toContain('## Start-up (`startup`)');
    expect(md).toContain('10 rounds (+2 warm-up), interleaved · load average 0.50 → 0.75 · every run: NODE_EXTRA_CA_CERTS unset');
    expect(md).toContain('| **sea \\| ours** (ours) | 45.0 | 44.0 | 47.0 | 44.0 | 40.0 | 1.50× |');
    expect(md).toContain('| **node -e 0** (peer) | 30.0 | 29.0 | 32.0 | 29.0 | 40.0 | 1.00× |');
    expect(md).toContain('| /bin/true | 2.00 | 1.00 | 4.00 | 1.00 | 40.0 | 0.067× |');
    expect(md).toContain('**sea | ours ÷ node -e 0: wall 1.50×');
    expect(md).toContain('![Start-up: median wall time per variant](bench/startup.svg)');
    expect(md).toContain('- sea \\| ours: `cmd-sea | ours` → prints `outrigger 0.1.0` — the binary');
  });

  it('renders a size section with missing readings as dashes and notes another machine', () => {
    expect(md).toContain('## Binary size (`binary-size`)');
    expect(md).toContain('| **SEA** (ours) | 116,000,000 | 116.0 MB | 10.00× |  |');
    expect(md).toContain('| SEA, zstd -19 | – | – | – | skipped |');
    expect(md).toContain('**SEA ÷ Go shim: 10.00×**');
    expect(md).toContain('Machine: Test CPU, 2 cores, 23 GiB, Debian GNU/Linux 12 (bookworm), kernel 6.1.0, Node v26.10.0');
    expect(md).toContain('quick run');
    expect(md.indexOf('## Start-up')).toBeLessThan(md.indexOf('## Binary size'));
  });

  it('refuses results whose ours/peer label names no variant, and an empty report', () => {
    expect(() => renderReport([{ ...timed, peer: 'missing' }], (n) => n)).toThrow(/"missing"/);
    expect(() => renderReport([], (n) => n)).toThrow(/no results/);
  });

  it('escapes table cells', () => {
    expect(cell('a|b\nc')).toBe('a\\|b c');
  });
});

describe('metrics printed by the command', () => {
  const rate: PrintedMetric = { key: 'rate', label: 'calls/s', better: 'higher' };
  const cpu: PrintedMetric = { key: 'cpu', label: 'CPU µs/call', better: 'lower' };

  it('reads every metric from the last JSON line, whatever came before it', () => {
    expect(parsePrintedMetrics('warming up\n{"rate": 1500.5, "cpu": 20, "extra": "x"}\n\n', [rate, cpu], 'load')).toEqual({ rate: 1500.5, cpu: 20 });
  });

  it('names the command and the missing key when the output does not fit', () => {
    expect(() => parsePrintedMetrics('done\n', [rate], 'load --x')).toThrow(/`load --x` should print a JSON object as its last line, printed "done"/);
    expect(() => parsePrintedMetrics('[1,2]', [rate], 'load')).toThrow(/not a JSON object/);
    expect(() => parsePrintedMetrics('{"cpu": 3}', [rate, cpu], 'load')).toThrow(/no number for "rate" \(calls\/s\)/);
    expect(() => parsePrintedMetrics('{"rate": "fast"}', [rate], 'load')).toThrow(/no number for "rate"/);
    expect(() => parsePrintedMetrics('', [rate], 'load')).toThrow(/should print a JSON object/);
  });

  it('measuredRun sends stdout to a file when asked', () => {
    const file = path.join(os.tmpdir(), `bench-runner-test-stdout-${process.pid}`);
    fs.writeFileSync(file, 'old contents that must be truncated away\n');
    try {
      measuredRun(['/bin/sh', '-c', 'echo one; echo \'{"rate": 7}\''], { PATH: '/usr/bin:/bin' }, { stdoutFile: file });
      expect(fs.readFileSync(file, 'utf8')).toBe('one\n{"rate": 7}\n');
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  const machine: MachineFacts = { cpu: 'c', cores: 2, memoryGiB: 1, kernel: 'k', os: 'o', node: 'v26', date: '2026-11-22T07:00:00Z' };
  const quiet = { quick: false, machine, log: () => {} };
  /** A command printing a fixed rate; the fourth run of each variant is its third measured round. */
  const printer = (label: string, json: string, peer?: string) => ({
    label,
    argv: ['/bin/sh', '-c', `echo starting; echo '${json}'`],
    ...(peer ? { peer } : {}),
  });
  const bench = (variants: TimedBenchmark['variants'], extra: Partial<TimedBenchmark> = {}): TimedBenchmark => ({
    kind: 'timed',
    name: 'metric-test',
    title: 'Metric test',
    what: 'Rates printed by real commands.',
    variants,
    metrics: [rate, cpu],
    ours: 'ours, 1',
    peer: 'peer, 1',
    rounds: 3,
    quickRounds: 1,
    warmupRounds: 1,
    ...extra,
  });

  it('runTimed summarises what each measured run printed, keeps per-variant peers and the metric list', async () => {
    const result = await runTimed(
      bench([
        printer('ours, 1', '{"rate": 300, "cpu": 10}'),
        printer('peer, 1', '{"rate": 200, "cpu": 15}'),
        printer('ours, 16', '{"rate": 900, "cpu": 8}', 'peer, 16'),
        printer('peer, 16', '{"rate": 600, "cpu": 9}', 'peer, 16'),
      ]),
      quiet,
    );
    expect(result.metrics).toEqual([rate, cpu]);
    const byLabel = new Map(result.variants.map((v) => [v.label, v]));
    expect(byLabel.get('ours, 1')!.metrics).toEqual({ rate: { n: 3, min: 300, median: 300, p90: 300, max: 300 }, cpu: { n: 3, min: 10, median: 10, p90: 10, max: 10 } });
    expect(byLabel.get('peer, 16')!.metrics!.rate!.median).toBe(600);
    expect(byLabel.get('ours, 16')!.peer).toBe('peer, 16');
    expect(byLabel.get('ours, 1')!.peer).toBeUndefined();
    // the check run's first line is not one of the measured readings, so it is not shown
    expect(byLabel.get('ours, 1')!.output).toBeUndefined();
    expect(byLabel.get('ours, 1')!.wallMs.n).toBe(3);
  });

  it('runTimed fails before measuring when a command prints no metric, and still tears down', async () => {
    const events: string[] = [];
    const run = runTimed(
      bench([
        { ...printer('ours, 1', '{"rate": 1, "cpu": 1}'), setup: () => void events.push('setup'), teardown: () => void events.push('teardown') },
        printer('peer, 1', '{"cpu": 1}'),
      ]),
      quiet,
    );
    await expect(run).rejects.toThrow(/no number for "rate"/);
    expect(events).toEqual(['setup', 'teardown']);
  });

  it('runTimed refuses a variant peer that names no variant', async () => {
    await expect(runTimed(bench([printer('ours, 1', '{}', 'nobody'), printer('peer, 1', '{}')]), quiet)).rejects.toThrow(/peer "nobody" of variant "ours, 1"/);
  });

  const summary = (median: number) => ({ n: 5, min: median * 0.9, median, p90: median * 1.05, max: median * 1.1 });
  const variant = (label: string, calls: number, extra: Partial<VariantResult> = {}): VariantResult => ({
    label,
    command: `load ${label}`,
    wallMs: summary(2300),
    cpuMs: summary(2000),
    maxRssKiB: summary(60_000),
    metrics: { rate: summary(calls), cpu: summary(1e6 / calls) },
    ...extra,
  });
  const result: TimedResult = {
    kind: 'timed',
    name: 'ttrpc',
    title: 'ttrpc State',
    what: 'Rates.',
    ours: 'ours, 16',
    peer: 'Go, 16',
    machine,
    quick: false,
    rounds: 5,
    warmupRounds: 0,
    load: [1, 1],
    metrics: [rate, cpu],
    variants: [
      variant('ours, 1', 20_000, { peer: 'Go, 1' }),
      variant('Go, 1', 16_000, { peer: 'Go, 1' }),
      variant('ours, 16', 45_000, { peer: 'Go, 16' }),
      variant('Go, 16', 30_000, { peer: 'Go, 16' }),
    ],
  };

  it('the report tabulates the metrics, compares each row with its own peer and states every pair', () => {
    const md = renderReport([result], (n) => `bench/${n}.svg`);
    expect(md).toContain('| variant | calls/s median | min | max | CPU µs/call median | vs peer |');
    expect(md).toContain('| ours, 1 | 20,000 | 18,000 | 22,000 | 50 | 1.25× |');
    expect(md).toContain('| Go, 1 | 16,000 | 14,400 | 17,600 | 62.5 | 1.00× |');
    expect(md).toContain('| **ours, 16** (ours) | 45,000 | 40,500 | 49,500 | 22.2 | 1.50× |');
    expect(md).toContain('**ours, 16 ÷ Go, 16: calls/s 1.50×** (medians 45,000 vs 30,000; higher is better).');
    expect(md).toContain('**ours, 1 ÷ Go, 1: calls/s 1.25×** (medians 20,000 vs 16,000; higher is better).');
    expect(md.indexOf('ours, 16 ÷ Go, 16')).toBeLessThan(md.indexOf('ours, 1 ÷ Go, 1'));
    expect(md).not.toContain('wall median ms');
    expect(md).toContain('![ttrpc State: median calls/s per variant](bench/ttrpc.svg)');
  });

  it('a wall-time table also honours per-variant peers', () => {
    const timed: TimedResult = { ...result, variants: [variant('ours, 16', 1), { ...variant('Go, 16', 1), wallMs: summary(1150) }] };
    delete timed.metrics;
    const md = renderReport([timed], (n) => n);
    expect(md).toContain('| **ours, 16** (ours) | 2300.0 | 2070.0 | 2415.0 | 2000.0 | 58.6 | 2.00× |');
  });

  it('the chart draws the headline metric, pairs coloured as ours and peer', () => {
    const svg = resultChartSvg(result);
    expect(svg).toContain('ttrpc State: calls/s');
    expect(svg).toContain('45,000');
    expect(svg).toContain('higher is better');
    expect(svg.match(/#d9480f/g)!.length).toBeGreaterThanOrEqual(2); // ours, 16 and ours, 1
    expect(() => resultChartSvg({ ...result, variants: [{ ...variant('ours, 16', 1), metrics: {} }] })).toThrow(/has no "rate" readings/);
  });

  it('formatMetric groups large numbers and keeps three significant digits of small ones', () => {
    expect(formatMetric(45_123.4)).toBe('45,123');
    expect(formatMetric(22.222)).toBe('22.2');
    expect(formatMetric(0.012345)).toBe('0.0123');
    expect(formatMetric(100)).toBe('100');
  });
});

describe('process CPU time from /proc', () => {
  it('reads utime + stime in ms, even when the command name holds spaces and parentheses', () => {
    const fields = ['S', '1', '2', '3', '0', '-1', '4194560', '100', '0', '0', '0', '250', '37', '0', '0'];
    expect(cpuMsFromStat(`4242 (node) x) ${fields.join(' ')}\n`)).toBe(2870);
  });

  it('reads a live process and names the pid when it is gone or the line is not a stat line', () => {
    expect(processCpuMs(process.pid)).toBeGreaterThanOrEqual(0);
    expect(() => processCpuMs(2 ** 22 + 1)).toThrow(/\/proc\/4194305\/stat/);
    expect(() => cpuMsFromStat('garbage')).toThrow(/not a \/proc\/PID\/stat line/);
    expect(() => cpuMsFromStat('1 (x) S 1')).toThrow(/no utime\/stime/);
  });
});

describe('ttrpc benchmark commands (our server and load generator as real processes)', () => {
  const run = promisify(execFile);
  const node = (script: string, args: string[]) => run(PINNED_NODE, ['--no-warnings=ExperimentalWarning', path.join(ROOT, script), ...args]);

  it('the load generator reaches the state server and prints its rate, server pid and CPU per call', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-ttrpc-'));
    const socket = path.join(dir, 's.sock');
    const server = spawn(PINNED_NODE, ['--no-warnings=ExperimentalWarning', path.join(ROOT, 'scripts/bench/ttrpc-state-server.ts'), '--socket', socket, '--id', 'c1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let socketLeft: boolean | undefined;
    try {
      const listening = await new Promise<string>((resolve, reject) => {
        server.stdout.once('data', (d: Buffer) => resolve(d.toString()));
        server.once('exit', (code) => reject(new Error(`state server exited with ${code}`)));
      });
      expect(listening.trim()).toBe(`listening ${socket}`);
      expect(fs.statSync(socket).mode & 0o777).toBe(0o600);

      const target = path.join(dir, 'target.json');
      fs.writeFileSync(target, JSON.stringify({ address: `unix://${socket}`, id: 'c1' }));
      const { stdout } = await node('scripts/bench/ttrpc-load.ts', ['--target', target, '--clients', '3', '--seconds', '0.2', '--warmup-seconds', '0.05']);
      const report = JSON.parse(stdout.trim()) as Record<string, number>;
      expect(report.clients).toBe(3);
      expect(report.shimPid).toBe(server.pid);
      expect(report.calls).toBeGreaterThan(0);
      expect(report.callsPerSecond).toBeGreaterThan(0);
      expect(report.serverCpuUsPerCall).toBeGreaterThanOrEqual(0);
      expect(report.clientCpuUsPerCall).toBeGreaterThan(0);

      // an id the server does not have: the load run fails with the server's NotFound, exit 1
      fs.writeFileSync(target, JSON.stringify({ address: `unix://${socket}`, id: 'other' }));
      await expect(node('scripts/bench/ttrpc-load.ts', ['--target', target, '--clients', '1', '--seconds', '0.1'])).rejects.toMatchObject({
        code: 1,
        stderr: expect.stringContaining('container other not created: not found'),
      });
    } finally {
      server.kill('SIGTERM');
      for (let i = 0; i < 100 && server.exitCode === null; i++) await sleep(20);
      socketLeft = fs.existsSync(socket);
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // SIGTERM is a graceful shutdown: exit 0, socket removed as Go's server does
    expect(server.exitCode).toBe(0);
    expect(socketLeft).toBe(false);
  });

  it('the load generator rejects bad arguments and an unreadable target with a message', async () => {
    await expect(node('scripts/bench/ttrpc-load.ts', ['--clients', '1'])).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('--target is required') });
    await expect(node('scripts/bench/ttrpc-load.ts', ['--target', '/nonexistent.json', '--clients', '1'])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('cannot read target /nonexistent.json'),
    });
    const file = path.join(os.tmpdir(), `bench-ttrpc-target-${process.pid}.json`);
    fs.writeFileSync(file, '{"address": "unix:///x"}');
    try {
      await expect(node('scripts/bench/ttrpc-load.ts', ['--target', file, '--clients', '0'])).rejects.toMatchObject({ stderr: expect.stringContaining('--clients must be a positive integer') });
      await expect(node('scripts/bench/ttrpc-load.ts', ['--target', file, '--clients', '1'])).rejects.toMatchObject({ stderr: expect.stringContaining('must hold {"address": string, "id": string}') });
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
