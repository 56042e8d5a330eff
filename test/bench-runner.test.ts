import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { escapeXml, niceCeil, renderBarChart, type Bar } from '../scripts/bench/chart-svg.ts';
import { measuredRun } from '../scripts/bench/measured-spawn.ts';
import type { MachineFacts, SizeResult, TimedResult, VariantResult } from '../scripts/bench/model.ts';
import { cell, renderReport } from '../scripts/bench/report-markdown.ts';
import { describeEnv, displayCommand, interleavedOrder, resolveEnv } from '../scripts/bench/runner.ts';
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
        expect(svg).not.toMatch(/NaN|Infinity/);
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
