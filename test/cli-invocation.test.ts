import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LINK_ALIASES, resolveInvocation, SHIM_BINARY_NAME, TOP_LEVEL_COMMANDS } from '../src/cli/invocation.ts';
import { buildProgram } from '../src/cli/program.ts';

const argArb = fc.array(fc.string({ maxLength: 12 }), { maxLength: 6 });

describe('resolveInvocation', () => {
  it('maps the shim name to the shim command, whatever directory it was started from', () => {
    fc.assert(
      fc.property(fc.constantFrom('', '/usr/local/bin/', './bin/', '../x/'), argArb, (dir, args) => {
        const inv = resolveInvocation(`${dir}${SHIM_BINARY_NAME}`, args);
        expect(inv.invokedAs).toBe(SHIM_BINARY_NAME);
        expect(inv.args).toEqual(['shim', ...args]);
      }),
    );
  });

  it('maps ctd-decoder to imgcrypt decrypt with the arguments kept in order', () => {
    fc.assert(
      fc.property(argArb, (args) => {
        expect(resolveInvocation('/opt/bin/ctd-decoder', args).args).toEqual(['imgcrypt', 'decrypt', ...args]);
      }),
    );
  });

  it('treats outrigger-<cmd> as `outrigger <cmd>` for a top-level command, and any other name as plain outrigger', () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...TOP_LEVEL_COMMANDS), fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/)), argArb, (cmd, args) => {
        const inv = resolveInvocation(`/usr/bin/outrigger-${cmd}`, args);
        const alias = LINK_ALIASES[`outrigger-${cmd}`];
        const expected = alias ?? (TOP_LEVEL_COMMANDS.has(cmd) ? [cmd] : []);
        expect(inv.args).toEqual([...expected, ...args]);
      }),
    );
    expect(resolveInvocation('/tmp/outrigger-linux-amd64', ['--version']).args).toEqual(['--version']);
  });

  it('knows exactly the top-level commands of the command tree', () => {
    const names = buildProgram().commands.map((c) => c.name()).filter((n) => n !== 'help');
    expect([...TOP_LEVEL_COMMANDS].sort()).toEqual(names.sort());
  });

  it('passes arguments through unchanged for the plain name and unknown names', () => {
    fc.assert(
      fc.property(fc.constantFrom('outrigger', '/x/outrigger', 'outrigger-', 'my-custom-name'), argArb, (name, args) => {
        expect(resolveInvocation(name, args).args).toEqual(args);
      }),
    );
  });

  it('has an entry for every link the build creates', () => {
    expect(Object.keys(LINK_ALIASES).sort()).toEqual(
      ['containerd-shim-outrigger-v2', 'ctd-decoder', 'outrigger-estargz', 'outrigger-imgcrypt', 'outrigger-log', 'outrigger-zstd'].sort(),
    );
  });
});
