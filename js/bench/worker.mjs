// What one socket call costs through preview2-shim: every call is a
// synchronous round trip to the shim's worker thread.
//   node js/bench/worker.mjs
import { wasiImports } from '../src/policy.js';

const imports = wasiImports();
const network = imports['wasi:sockets/instance-network'].instanceNetwork();
const { createTcpSocket } = imports['wasi:sockets/tcp-create-socket'];
const LOOPBACK = { tag: 'ipv4', val: { port: 0, address: [127, 0, 0, 1] } };

function perCall(name, n, f) {
  f(); // the worker starts on the first call
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    f();
  }
  const us = Number(process.hrtime.bigint() - t0) / n / 1000;
  console.log(`${name}\t${us.toFixed(1)} µs`);
}

const socket = createTcpSocket('ipv4');
perCall('one round trip (isListening)', 20000, () => socket.isListening());
perCall('create and close a socket (2 round trips)', 5000, () => createTcpSocket('ipv4')[Symbol.dispose]());
perCall('bind probe: create, bind, poll, finish, close (the worker listens)', 2000, () => {
  const probe = createTcpSocket('ipv4');
  probe.startBind(network, LOOPBACK);
  const pollable = probe.subscribe();
  pollable.block();
  pollable[Symbol.dispose]();
  probe.finishBind();
  probe[Symbol.dispose]();
});
socket[Symbol.dispose]();
