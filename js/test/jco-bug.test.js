// jco 1.35.0 lifts a list of resources with dispose closures that capture
// `var rsc`/`var handle` declared in the loop, so every element's dispose
// drops the list's LAST handle. The package never calls that dispose
// (src/index.js: Reservation[Symbol.dispose]). This test asserts the bug on
// the raw bindings: when a jco upgrade fixes it, this test fails, and the
// workaround and this test can go.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { instantiate } from '../gen/hbutils_port.js';
import { wasiImports } from '../src/policy.js';
import { canListen, freeBlock } from './helpers.js';

const core = (name) => new WebAssembly.Module(readFileSync(new URL(`../gen/${name}`, import.meta.url)));

test('jco bug: disposing element 0 of a raw reserve-ports list frees the last port instead', async () => {
  const { port } = instantiate(core, wasiImports());
  const start = await freeBlock(3);
  const list = port.reservePorts({ tag: 'range', val: { start, end: start + 3, step: 1 } }, 3, true);
  const ports = list.map((r) => r.port());
  list[0][Symbol.dispose]();
  const free = [];
  for (const p of ports) {
    free.push(await canListen('127.0.0.1', p));
  }
  assert.deepEqual(free, [false, false, true],
    'jco now frees the right reservation: the workaround in src/index.js (Reservation[Symbol.dispose], '
    + 'fromList) is no longer needed; remove it and this test');
  list[0].release();
  list[1].release();
});
