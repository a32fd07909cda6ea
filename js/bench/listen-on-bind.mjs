// The listen-on-bind caveat, measured: preview2-shim's bind is a Node
// server.listen, so while a prober checks a port, a client connecting to it
// is accepted. A client process connects to a free port in a loop for N
// seconds while this process probes it, and counts the connections that
// succeeded (the kernel completed the handshake: someone was listening).
//   node js/bench/listen-on-bind.mjs [seconds]
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createInstance, wasiImports } from '../src/index.js';

const seconds = Number(process.argv[2] ?? 3);

// The client: connect, count, repeat, until stdin closes; then print counts.
const CLIENT = `
const net = require('node:net');
const port = Number(process.argv[1]);
let accepted = 0, refused = 0, other = 0, done = false;
process.stdin.on('end', () => { done = true; });
process.stdin.resume();
function once() {
  if (done) { console.log(JSON.stringify({ accepted, refused, other })); return; }
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('connect', () => { accepted++; socket.destroy(); setImmediate(once); });
  socket.on('error', (e) => { if (e.code === 'ECONNREFUSED') refused++; else other++; setImmediate(once); });
}
once();
`;

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Runs `probe(port)` in a loop for `seconds` while the client connects.
// `probe` may instead be async (then it is awaited once, for the whole time).
async function measure(name, probe) {
  const port = await freePort();
  const client = spawn(process.execPath, ['-e', CLIENT, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  client.stdout.on('data', (d) => { out += d; });
  await new Promise((resolve) => setTimeout(resolve, 200)); // the client is connecting
  let probes = 0;
  if (probe.constructor.name === 'AsyncFunction') {
    probes = await probe(port);
  } else {
    const end = process.hrtime.bigint() + BigInt(seconds * 1e9);
    while (process.hrtime.bigint() < end) {
      probe(port);
      probes++;
    }
  }
  client.stdin.end();
  await new Promise((resolve) => client.on('close', resolve));
  const counts = JSON.parse(out);
  console.log(`${name}\t${probes} probes\t${counts.accepted} connections accepted\t${counts.refused} refused`
    + `${counts.other ? `\t${counts.other} other errors` : ''}`);
  return counts;
}

// A guest's bind probe made straight on the import object, as the component
// makes it (bind 127.0.0.1:port, then drop), with the listen backlog set first.
function rawProbe(backlog) {
  const imports = wasiImports();
  const network = imports['wasi:sockets/instance-network'].instanceNetwork();
  const { createTcpSocket } = imports['wasi:sockets/tcp-create-socket'];
  return (port) => {
    const socket = createTcpSocket('ipv4');
    if (backlog !== undefined) {
      socket.setListenBacklogSize(backlog);
    }
    socket.startBind(network, { tag: 'ipv4', val: { port, address: [127, 0, 0, 1] } });
    const pollable = socket.subscribe();
    pollable.block();
    pollable[Symbol.dispose]();
    socket.finishBind();
    socket[Symbol.dispose]();
  };
}

// The control for a host whose bind does not listen (wasmtime binds with
// SO_REUSEADDR and no listen): the same probe made natively by python3.
const NATIVE = `
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.close(); n += 1
print(n)
`;
async function nativeBinds(port) {
  const python = spawn('python3', ['-c', NATIVE, String(port), String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  python.stdout.on('data', (d) => { out += d; });
  const code = await new Promise((resolve) => python.on('close', resolve));
  return code === 0 ? Number(out) : `no python3 (exit ${code}):`;
}

console.log(`each for ${seconds} s; a client process connects to the port in a loop`);
await measure('nobody probes (control)', async () => {
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  return 0;
});
await measure('bind without listen, native (python3), as wasmtime binds', nativeBinds);
const ports = createInstance();
await measure('isFreePort (component, shim default backlog 128)', (port) => ports.isFreePort(port));
await measure('bind probe, backlog 128 (the shim default)', rawProbe());
await measure('bind probe, backlog 1', rawProbe(1n));
