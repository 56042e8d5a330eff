/** containerd's Go-style shim flags (shim-protocol.md §2.2) as our parser reads them. */
import { describe, expect, it } from 'vitest';
import { parseShimFlags, requireFlags, ShimFlagError } from '../shims/outrigger-v2/flags.ts';

describe('parseShimFlags', () => {
  it('reads the exact start argv of containerd 1.6', () => {
    const f = parseShimFlags(['-namespace', 'default', '-address', '/run/c.sock', '-publish-binary', '/usr/bin/containerd', '-id', 't1', '-debug', 'start']);
    expect(f).toMatchObject({ namespace: 'default', address: '/run/c.sock', publishBinary: '/usr/bin/containerd', id: 't1', debug: true, action: 'start' });
    expect(() => requireFlags(f)).not.toThrow();
  });

  it('reads the delete argv with -bundle and no -debug', () => {
    const f = parseShimFlags(['-namespace', 'k8s.io', '-address', '/a', '-publish-binary', '/c', '-id', 'x', '-bundle', '/b/x', 'delete']);
    expect(f).toMatchObject({ bundle: '/b/x', debug: false, action: 'delete' });
  });

  it('without an action it is the daemon, which needs -socket', () => {
    const f = parseShimFlags(['-namespace', 'n', '-id', 'i', '-address', '/a']);
    expect(f.action).toBe('serve');
    expect(() => requireFlags(f)).toThrow(/missing -socket/);
    expect(() => requireFlags(parseShimFlags(['-namespace', 'n', '-id', 'i', '-socket', '/s']))).not.toThrow();
  });

  it('accepts the other spellings Go accepts: --flag, -flag=value, -bool=false', () => {
    const f = parseShimFlags(['--namespace=ns', '-id=a=b', '--debug=false', '-address', '/x', 'start']);
    expect(f).toMatchObject({ namespace: 'ns', id: 'a=b', debug: false, action: 'start' });
  });

  it('-v and -help', () => {
    expect(parseShimFlags(['-v']).version).toBe(true);
    expect(parseShimFlags(['-help']).help).toBe(true);
    expect(parseShimFlags(['-h']).help).toBe(true);
  });

  it('refuses what Go refuses, naming the problem', () => {
    expect(() => parseShimFlags(['-bogus'])).toThrow(new ShimFlagError('flag provided but not defined: -bogus'));
    expect(() => parseShimFlags(['-namespace'])).toThrow(/flag needs an argument: -namespace/);
    expect(() => parseShimFlags(['-debug=maybe'])).toThrow(/invalid boolean value "maybe"/);
    expect(() => parseShimFlags(['-id', 'x', 'restart'])).toThrow(/unknown action "restart"/);
    expect(() => parseShimFlags(['-id', 'x', 'start', 'extra'])).toThrow(/unexpected arguments after start/);
    expect(() => parseShimFlags(['---x'])).toThrow(/bad flag syntax/);
  });

  it('names every missing required flag', () => {
    expect(() => requireFlags(parseShimFlags(['start']))).toThrow('shim start: missing -namespace, -id, -address');
  });
});
