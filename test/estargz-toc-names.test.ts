/**
 * TOC entry names must stay inside the layer (toc.ts assertInsideLayer): refused when absolute or
 * when any `/`-separated component is `..`, accepted otherwise, `...` and `..x` included. The
 * check runs for every TOC entry, so it is a pattern test; this holds it to the component rule.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assertInsideLayer, TocError } from '../processors/estargz/toc.ts';

function leaves(name: string): boolean {
  return name.startsWith('/') || name.split('/').includes('..');
}

describe('assertInsideLayer', () => {
  it('refuses exactly the absolute names and those with a .. component', () => {
    const component = fc.constantFrom('..', '.', '...', '..a', 'a..', 'a', 'b.c', '');
    fc.assert(
      fc.property(fc.array(component, { minLength: 1, maxLength: 6 }), (parts) => {
        const name = parts.join('/');
        if (leaves(name)) expect(() => assertInsideLayer(name, 'entry')).toThrow(TocError);
        else expect(() => assertInsideLayer(name, 'entry')).not.toThrow();
      }),
      { numRuns: 2000 },
    );
  });

  it('names the entry and the name in the refusal', () => {
    expect(() => assertInsideLayer('a/../../etc/passwd', 'TOC entry 7')).toThrow('TOC entry 7: name "a/../../etc/passwd" leaves the layer root');
  });
});
