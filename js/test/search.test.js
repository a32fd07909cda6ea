import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getFreePort, getFreePorts, isFreePort, reservePorts } from '../src/index.js';
import { canListen, close, freeBlock, listen, throwsCode } from './helpers.js';

test('get-free-port returns the first free candidate, in the order given', async () => {
  const start = await freeBlock(4);
  const held = [await listen('127.0.0.1', start), await listen('127.0.0.1', start + 1)];
  try {
    assert.equal(getFreePort({ start, end: start + 4 }), start + 2);
    assert.equal(getFreePort([start + 1, start + 3, start + 2]), start + 3);
    // A negative step walks down from start.
    assert.equal(getFreePort({ start: start + 3, end: start - 1, step: -1 }), start + 3);
  } finally {
    await Promise.all(held.map(close));
  }
});

test('strict get-free-port with nothing free is no-free-port, in hbutils words', async () => {
  const start = await freeBlock(2);
  const held = [await listen('127.0.0.1', start), await listen('127.0.0.1', start + 1)];
  try {
    throwsCode(assert, () => getFreePort({ start, end: start + 2 }), 'no-free-port',
      new RegExp(`^No free port can be allocated within range\\(${start}, ${start + 2}\\)$`));
  } finally {
    await Promise.all(held.map(close));
  }
});

test('get-free-port with no candidates, not strict, returns the OS choice, and it is free', async () => {
  const port = getFreePort(undefined, { strict: false });
  assert.ok(Number.isInteger(port) && port >= 1024, `${port}`);
  assert.equal(isFreePort(port), true);
  assert.equal(await canListen('127.0.0.1', port), true);
});

test('non-strict get-free-port with every candidate held falls back to the OS', async () => {
  const start = await freeBlock(2);
  const held = [await listen('127.0.0.1', start), await listen('127.0.0.1', start + 1)];
  try {
    const port = getFreePort({ start, end: start + 2 }, { strict: false });
    assert.ok(port !== start && port !== start + 1 && port >= 1024, `${port}`);
  } finally {
    await Promise.all(held.map(close));
  }
});

test('get-free-ports returns count distinct free ports, skipping held ones, in order', async () => {
  const start = await freeBlock(6);
  const held = await listen('127.0.0.1', start + 1);
  try {
    assert.deepEqual(getFreePorts(3, { start, end: start + 6 }), [start, start + 2, start + 3]);
    // A port listed twice comes back once.
    assert.deepEqual(getFreePorts(2, [start + 4, start + 4, start + 5]), [start + 4, start + 5]);
    throwsCode(assert, () => getFreePorts(6, { start, end: start + 6 }), 'no-free-port', /only 5 are free/);
  } finally {
    await close(held);
  }
});

test('reserve-ports holds every port it returns', async () => {
  const start = await freeBlock(5);
  const reservations = reservePorts(3, { start, end: start + 5 });
  try {
    const ports = reservations.map((r) => r.port);
    assert.equal(new Set(ports).size, 3);
    for (const port of ports) {
      assert.ok(port >= start && port < start + 5, `${port}`);
      assert.equal(await canListen('127.0.0.1', port), false, `${port} is held`);
      assert.equal(isFreePort(port), false);
    }
  } finally {
    reservations.forEach((r) => r.release());
  }
});

test('reserve-ports is all or nothing: when too few are free it holds none', async () => {
  const start = await freeBlock(5);
  const held = await listen('127.0.0.1', start + 2);
  try {
    throwsCode(assert, () => reservePorts(5, { start, end: start + 5 }), 'no-free-port', /only 4 are free/);
    for (const port of [start, start + 1, start + 3, start + 4]) {
      assert.equal(await canListen('127.0.0.1', port), true, `${port} was released`);
    }
  } finally {
    await close(held);
  }
});
