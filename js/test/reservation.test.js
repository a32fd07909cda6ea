import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { Reservation, createInstance, reservePort, reservePorts } from '../src/index.js';
import { canListen, freeBlock, throwsCode } from './helpers.js';

test('a reservation holds its port until released', async () => {
  const start = await freeBlock(3);
  const reservation = reservePort({ start, end: start + 3 });
  const port = reservation.port;
  assert.ok(port >= start && port < start + 3, `${port}`);
  assert.equal(await canListen('127.0.0.1', port), false);
  assert.equal(await canListen('0.0.0.0', port), false);
  reservation.release();
  assert.equal(await canListen('127.0.0.1', port), true);
});

test('an ended reservation answers released or socket-taken, and the instance goes on', async () => {
  const start = await freeBlock(3);
  const ports = createInstance();
  const released = ports.reservePort({ start, end: start + 3 });
  released.release();
  throwsCode(assert, () => released.port, 'released', /released/);
  throwsCode(assert, () => released.release(), 'released');
  throwsCode(assert, () => released.takeSocket(), 'released');

  const taken = ports.reservePort({ start, end: start + 3 });
  const socket = taken.takeSocket();
  throwsCode(assert, () => taken.port, 'socket-taken', /socket was taken/);
  throwsCode(assert, () => taken.release(), 'socket-taken');
  socket[Symbol.dispose]();
  assert.ok(Number.isInteger(ports.getFreePort({ start, end: start + 3 })));
});

test('disposing a reservation frees its port, and disposing again does nothing', async () => {
  const start = await freeBlock(2);
  const reservation = reservePort({ start, end: start + 2 });
  const port = reservation.port;
  reservation[Symbol.dispose]();
  assert.equal(await canListen('127.0.0.1', port), true);
  reservation[Symbol.dispose]();
  throwsCode(assert, () => reservation.port, 'released');
});

test('disposing element i of reservePorts frees exactly that port (jco 1.35.0 worked around)', async () => {
  const start = await freeBlock(3);
  for (let i = 0; i < 3; i++) {
    const reservations = reservePorts(3, { start, end: start + 3 });
    const ports = reservations.map((r) => r.port);
    reservations[i][Symbol.dispose]();
    for (let j = 0; j < 3; j++) {
      assert.equal(await canListen('127.0.0.1', ports[j]), i === j, `element ${j} after disposing ${i}`);
    }
    reservations.forEach((r, j) => j !== i && r.release());
  }
});

test('takeSocket hands over the listener, which accepts a Node client', async () => {
  const start = await freeBlock(2);
  const reservation = reservePort({ start, end: start + 2 });
  const port = reservation.port;
  const listener = reservation.takeSocket();
  assert.equal(listener.isListening(), true);
  assert.equal(await canListen('127.0.0.1', port), false, 'the taken socket still holds the port');

  const client = net.connect({ host: '127.0.0.1', port });
  await once(client, 'connect');
  const ready = listener.subscribe();
  ready.block();
  ready[Symbol.dispose]();
  const [connection, input, output] = listener.accept();
  output.blockingWriteAndFlush(new TextEncoder().encode('hello'));
  const [data] = await once(client, 'data');
  assert.equal(data.toString(), 'hello');
  assert.equal(connection.remoteAddress().val.port, client.localPort);

  client.destroy();
  input[Symbol.dispose]();
  output[Symbol.dispose]();
  connection[Symbol.dispose]();
  listener[Symbol.dispose]();
  // The port is the caller's until the socket is closed; then it is free.
  // The shim closes it in its worker, so the test polls (bounded) rather
  // than guess how long that takes.
  let free = false;
  for (let tries = 0; tries < 500 && !free; tries++) {
    free = await canListen('127.0.0.1', port);
    if (!free) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(free, true, 'the port stayed held after its socket was closed');
});

test('a Reservation is not made by hand', () => {
  assert.throws(() => new Reservation(), TypeError);
});
