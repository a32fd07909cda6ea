import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { test } from 'node:test';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { createInstance, networkPolicy, permits, PolicyError, wasiImports } from '../src/index.js';
import { canListen, close, freeBlock, listen, portOf, skipWithoutIpv6, throwsCode } from './helpers.js';

const v4 = (port, address = [127, 0, 0, 1]) => ({ tag: 'ipv4', val: { port, address } });
const v6 = (port, address = [0, 0, 0, 0, 0, 0, 0, 1]) =>
  ({ tag: 'ipv6', val: { port, flowInfo: 0, address, scopeId: 0 } });
const ANY4 = [0, 0, 0, 0];
const ANY6 = [0, 0, 0, 0, 0, 0, 0, 0];
const MAPPED = [0, 0, 0, 0, 0, 0xffff, 0x7f00, 1];

// A guest's view: what the import object does when a component calls it.
function guest(policy) {
  const imports = wasiImports(policy);
  const network = imports['wasi:sockets/instance-network'].instanceNetwork();
  const { createTcpSocket } = imports['wasi:sockets/tcp-create-socket'];
  const wait = (socket) => {
    const pollable = socket.subscribe();
    pollable.block();
    pollable[Symbol.dispose]();
  };
  return {
    imports,
    network,
    bind(addr, thenListen = false) {
      const socket = createTcpSocket(addr.tag);
      try {
        socket.startBind(network, addr);
        wait(socket);
        socket.finishBind();
        if (thenListen) {
          socket.startListen();
          wait(socket);
          socket.finishListen();
        }
        return 'ok';
      } catch (error) {
        return error;
      } finally {
        socket[Symbol.dispose]();
      }
    },
    connect(addr, bindFirst) {
      const socket = createTcpSocket(addr.tag);
      try {
        if (bindFirst) {
          socket.startBind(network, bindFirst);
          wait(socket);
          socket.finishBind();
        }
        socket.startConnect(network, addr);
        wait(socket);
        const [input, output] = socket.finishConnect();
        input[Symbol.dispose]();
        output[Symbol.dispose]();
        return 'ok';
      } catch (error) {
        return error;
      } finally {
        socket[Symbol.dispose]();
      }
    },
  };
}

test('permits: the Rust NetworkPolicy rules, case by case', () => {
  const loopback = networkPolicy();
  const connecting = networkPolicy({ connect: true });
  const confined = networkPolicy({ connect: true, block: { start: 20000, end: 20100 } });
  for (const use of ['tcp-bind', 'tcp-listen', 'tcp-accept']) {
    assert.ok(permits(loopback, v4(8000, [127, 1, 2, 3]), use), use);
    assert.ok(permits(loopback, v6(0), use), use);
  }
  assert.ok(!permits(loopback, v4(5432), 'tcp-connect'));
  assert.ok(permits(connecting, v4(5432), 'tcp-connect'));
  for (const use of ['tcp-bind', 'tcp-listen', 'tcp-accept', 'tcp-connect']) {
    assert.ok(!permits(connecting, v4(8000, [10, 0, 0, 1]), use), use);
    assert.ok(!permits(connecting, v6(8000, MAPPED), use), use);
  }
  // The wildcard only for a connect's ephemeral bind, and never in a block.
  assert.ok(permits(connecting, v4(0, ANY4), 'tcp-bind'));
  assert.ok(permits(connecting, v6(0, ANY6), 'tcp-bind'));
  assert.ok(!permits(loopback, v4(0, ANY4), 'tcp-bind'));
  assert.ok(!permits(connecting, v4(8000, ANY4), 'tcp-bind'));
  assert.ok(!permits(connecting, v4(0, ANY4), 'tcp-listen'));
  assert.ok(!permits(confined, v4(0, ANY4), 'tcp-bind'));
  for (const use of ['tcp-bind', 'tcp-listen', 'tcp-connect']) {
    assert.ok(permits(confined, v4(20099), use), use);
    for (const outside of [v4(19999), v4(20100), v4(0), v6(0)]) {
      assert.ok(!permits(confined, outside, use), `${outside.val.port} ${use}`);
    }
  }
  for (const use of ['udp-bind', 'udp-send', 'udp-receive']) {
    assert.ok(!permits(connecting, v4(5353), use), use);
  }
  for (const use of ['tcp-bind', 'tcp-listen', 'tcp-accept', 'tcp-connect']) {
    assert.ok(!permits(networkPolicy({ network: false }), v4(8000), use), use);
  }
});

test('a bad policy is refused with the reason', () => {
  throwsCode(assert, () => networkPolicy({ block: { start: 20000, end: 20000 } }), 'invalid-argument',
    /^the port block 20000\.\.20000 holds no port \(1 to 65535\)$/);
  throwsCode(assert, () => networkPolicy({ block: { start: 0, end: 1 } }), 'invalid-argument', /holds no port/);
  throwsCode(assert, () => networkPolicy({ block: { start: 60000, end: 65537 } }), 'invalid-argument', /holds no port/);
  throwsCode(assert, () => networkPolicy({ connect: 'yes' }), 'invalid-argument', /true or false/);
  throwsCode(assert, () => networkPolicy({ udp: true }), 'invalid-argument', /unknown policy option "udp"/);
  assert.deepEqual(networkPolicy({ block: { start: 0, end: 3 } }).block, { start: 1, end: 3 });
});

test('inside its block an instance finds, reserves and probes ports', async () => {
  const start = await freeBlock(10);
  const tenant = createInstance({ block: { start, end: start + 10 } });
  assert.equal(tenant.getFreePort({ start, end: start + 10 }), start);
  assert.equal(tenant.isFreePort(start + 9), true);
  assert.equal(tenant.probePort(start + 5).ipv4, 'free');
  const held = tenant.reservePorts(10, { start, end: start + 10 });
  assert.deepEqual(held.map((r) => r.port).sort(), Array.from({ length: 10 }, (_, i) => start + i).sort());
  held.forEach((r) => r.release());
});

test('outside its block every call is access-denied, port 0 and the OS choice included', async () => {
  const start = await freeBlock(11);
  const tenant = createInstance({ block: { start, end: start + 10 } });
  const outside = start + 10;
  throwsCode(assert, () => tenant.isFreePort(outside), 'access-denied', /refused/);
  assert.deepEqual(tenant.probePort(outside), { ipv4: 'denied', ipv6: 'denied' });
  throwsCode(assert, () => tenant.getFreePort([outside]), 'access-denied');
  throwsCode(assert, () => tenant.getFreePort(undefined, { strict: false }), 'access-denied');
  throwsCode(assert, () => tenant.reservePort([outside]), 'access-denied');
  throwsCode(assert, () => tenant.getFreePorts(2, undefined, { strict: false }), 'access-denied');
  assert.equal(await canListen('127.0.0.1', start), true, 'a refused reserve-port left nothing held');
});

test('a search passes over candidates outside the block, never counting them free', () => {
  return freeBlock(11).then((start) => {
    const tenant = createInstance({ block: { start, end: start + 10 } });
    const outside = start + 10;
    assert.equal(tenant.getFreePort([outside, start + 1]), start + 1);
    const reservation = tenant.reservePort([outside, start + 2]);
    assert.equal(reservation.port, start + 2);
    reservation.release();
  });
});

test('a guest is refused binds outside the block, port 0, the wildcards and mapped IPv6', async (t) => {
  const start = await freeBlock(3);
  const g = guest({ block: { start, end: start + 2 } });
  assert.equal(g.bind(v4(start), true), 'ok');
  assert.equal(g.bind(v4(start + 2)), 'access-denied');
  assert.equal(g.bind(v4(0)), 'access-denied');
  assert.equal(g.bind(v4(start, ANY4)), 'access-denied');
  assert.equal(g.bind(v4(start, [192, 0, 2, 1])), 'access-denied');
  assert.equal(g.bind(v6(start, MAPPED)), 'access-denied');
  assert.equal(g.bind(v6(start, ANY6)), 'access-denied');
  if (await skipWithoutIpv6(t)) return;
  assert.equal(g.bind(v6(start + 1), true), 'ok');
  assert.equal(g.bind(v6(0)), 'access-denied');
});

test('without a block, a guest may bind loopback on any port, 0 included, but not the wildcard', () => {
  const g = guest({});
  assert.equal(g.bind(v4(0), true), 'ok');
  assert.equal(g.bind(v4(0, ANY4)), 'access-denied');
});

test('connect is refused unless granted, and then only to loopback (and the block)', async () => {
  const server = await listen('127.0.0.1');
  const port = portOf(server);
  try {
    assert.equal(guest({}).connect(v4(port)), 'access-denied');
    assert.equal(guest({}).connect(v4(port), v4(0)), 'access-denied');
    assert.equal(guest({ connect: true }).connect(v4(port, [192, 0, 2, 1])), 'access-denied');
    assert.equal(guest({ connect: true }).connect(v4(port)), 'ok');
    // In a block the OS's implicit bind would escape it: bind in the block first.
    const start = await freeBlock(1);
    const confined = guest({ connect: true, block: { start: port, end: port + 1 } });
    assert.equal(confined.connect(v4(port)), 'access-denied');
    assert.equal(guest({ connect: true, block: { start, end: start + 1 } }).connect(v4(port), v4(start)),
      'access-denied', 'the listener is outside the block');
  } finally {
    await close(server);
  }
});

test('UDP and name lookup are refused, though the shim grants both by default', () => {
  const stock = new WASIShim().getImportObject();
  const udp = stock['wasi:sockets/udp-create-socket'].createUdpSocket('ipv4');
  udp[Symbol.dispose]();

  const { imports, network } = guest({ connect: true });
  assert.throws(() => imports['wasi:sockets/udp-create-socket'].createUdpSocket('ipv4'), (e) => e === 'access-denied');
  assert.throws(() => imports['wasi:sockets/ip-name-lookup'].resolveAddresses(network, 'localhost'),
    (e) => e === 'permanent-resolver-failure');
});

test('network: false refuses every socket, and the component says access-denied', async () => {
  const start = await freeBlock(1);
  const none = createInstance({ network: false });
  throwsCode(assert, () => none.isFreePort(start), 'access-denied');
  throwsCode(assert, () => none.getFreePort(undefined, { strict: false }), 'access-denied');
  assert.deepEqual(none.probePort(start), { ipv4: 'denied', ipv6: 'denied' });
  assert.equal(guest({ network: false }).bind(v4(start)), 'access-denied');
});

test('a wildcard policy grants TCP and UDP binds on the wildcard in its block, and nothing else', () => {
  const wildcard = networkPolicy({ wildcard: true, connect: true, block: { start: 20000, end: 20100 } });
  assert.equal(wildcard.connect, false);
  for (const use of ['tcp-bind', 'tcp-listen', 'udp-bind']) {
    assert.ok(permits(wildcard, v4(20000, ANY4), use), use);
    assert.ok(permits(wildcard, v6(20099, ANY6), use), use);
  }
  for (const use of ['tcp-accept', 'tcp-connect', 'udp-send', 'udp-receive']) {
    assert.ok(!permits(wildcard, v4(20000, ANY4), use), use);
  }
  for (const addr of [v4(0, ANY4), v6(0, ANY6), v4(19999, ANY4), v4(20100, ANY4), v4(20000), v6(20000)]) {
    for (const use of ['tcp-bind', 'tcp-listen', 'udp-bind']) {
      assert.ok(!permits(wildcard, addr, use), `${addr.val.port} ${use}`);
    }
  }
  assert.throws(() => networkPolicy({ wildcard: true }), PolicyError);
});

test('isFreeOnWildcard: free, held by UDP or TCP, outside the block, and denied without the wildcard policy', async () => {
  const start = await freeBlock(3);
  const block = { start, end: start + 3 };
  const wildcard = createInstance({ wildcard: true, block });
  assert.equal(wildcard.isFreeOnWildcard(start), true);
  const udp = dgram.createSocket('udp4');
  await new Promise((resolve) => udp.bind(start + 1, '0.0.0.0', resolve));
  const tcp = net.createServer();
  await new Promise((resolve) => tcp.listen(start + 2, '127.0.0.1', resolve));
  try {
    assert.equal(wildcard.isFreeOnWildcard(start + 1), false);
    assert.equal(wildcard.isFreeOnWildcard(start + 2), false);
  } finally {
    udp.close();
    await new Promise((resolve) => tcp.close(resolve));
  }
  throwsCode(assert, () => wildcard.isFreeOnWildcard(start + 3), 'access-denied');
  // No loopback under it: the other calls are refused.
  throwsCode(assert, () => wildcard.isFreePort(start), 'access-denied');
  for (const policy of [{}, { connect: true }, { block }, { network: false }]) {
    throwsCode(assert, () => createInstance(policy).isFreeOnWildcard(start), 'access-denied');
  }
});

test('two instances in one process keep to their own blocks', async () => {
  const start = await freeBlock(10);
  const a = createInstance({ block: { start, end: start + 5 } });
  const b = createInstance({ block: { start: start + 5, end: start + 10 } });
  const aHeld = a.reservePorts(5, { start, end: start + 5 });
  const bHeld = b.reservePorts(5, { start: start + 5, end: start + 10 });
  assert.deepEqual(aHeld.map((r) => r.port).sort(), [0, 1, 2, 3, 4].map((i) => start + i));
  assert.deepEqual(bHeld.map((r) => r.port).sort(), [5, 6, 7, 8, 9].map((i) => start + i));
  // Neither may even look at the other's ports, let alone take one.
  throwsCode(assert, () => a.isFreePort(start + 7), 'access-denied');
  throwsCode(assert, () => b.isFreePort(start + 2), 'access-denied');
  throwsCode(assert, () => a.reservePort([start + 5]), 'access-denied');
  throwsCode(assert, () => b.getFreePort({ start, end: start + 10 }), 'access-denied');
  for (let port = start; port < start + 10; port++) {
    assert.equal(await canListen('127.0.0.1', port), false, `${port} is held`);
  }
  [...aHeld, ...bHeld].forEach((r) => r.release());
  assert.equal(await canListen('127.0.0.1', start + 9), true);
});

test('a socket of one instance cannot be passed into another', () => {
  const one = guest({});
  const other = wasiImports({});
  const socket = one.imports['wasi:sockets/tcp-create-socket'].createTcpSocket('ipv4');
  assert.ok(!(socket instanceof other['wasi:sockets/tcp'].TcpSocket));
  socket[Symbol.dispose]();
});
