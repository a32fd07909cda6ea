import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFreePort, probePort } from '../src/index.js';
import { close, listen, osPort, portOf, skipWithoutIpv6 } from './helpers.js';

test('a port held on 127.0.0.1 reads in use', async () => {
  const server = await listen('127.0.0.1');
  try {
    assert.equal(isFreePort(portOf(server)), false);
    assert.equal(probePort(portOf(server)).ipv4, 'in-use');
  } finally {
    await close(server);
  }
});

test('a port held on ::1 only reads in use', async (t) => {
  if (await skipWithoutIpv6(t)) return;
  const server = await listen('::1', 0, true);
  try {
    assert.equal(isFreePort(portOf(server)), false);
    assert.deepEqual(probePort(portOf(server)), { ipv4: 'free', ipv6: 'in-use' });
  } finally {
    await close(server);
  }
});

test('a port held on 0.0.0.0 reads in use', async () => {
  const server = await listen('0.0.0.0');
  try {
    assert.equal(isFreePort(portOf(server)), false);
    assert.equal(probePort(portOf(server)).ipv4, 'in-use');
  } finally {
    await close(server);
  }
});

test('a port held on [::] (dual-stack) reads in use', async (t) => {
  if (await skipWithoutIpv6(t)) return;
  const server = await listen('::', 0, false);
  try {
    assert.equal(isFreePort(portOf(server)), false);
    assert.deepEqual(probePort(portOf(server)), { ipv4: 'in-use', ipv6: 'in-use' });
  } finally {
    await close(server);
  }
});

test('a free port reads free on both families', async () => {
  const port = await osPort();
  assert.equal(isFreePort(port), true);
  const { ipv4, ipv6 } = probePort(port);
  assert.equal(ipv4, 'free');
  assert.ok(ipv6 === 'free' || ipv6 === 'unsupported', ipv6);
});
