// Per-call figures for Node's get-port on the cases of bench/compare:
//   node bench/peers.mjs <get-port's index.js> <free port> <block start>
// prints `case<TAB>peer<TAB>median ns per call` lines. get-port is ESM-only,
// so it is imported by path from the throwaway install under target/.
import net from 'node:net';
import {pathToFileURL} from 'node:url';

const [modulePath, freeArg, startArg] = process.argv.slice(2);
const {default: getPort, portNumbers, clearLockedPorts} = await import(pathToFileURL(modulePath).href);
const free = Number(freeArg);
const start = Number(startArg);
const PEER = 'get-port';
const BATCHES = 31;
const BATCH_NS = 20_000_000n;

// Median nanoseconds per call over BATCHES batches, each long enough that
// the clock and one descheduling do not decide it. get-port remembers what
// it handed out for 15 to 30 s and then skips it: forgetting after each
// call keeps every call doing the same work.
async function perCall(call) {
	let calls = 0;
	const calibrate = process.hrtime.bigint();
	while (process.hrtime.bigint() - calibrate < BATCH_NS / 4n) {
		await call();
		clearLockedPorts();
		calls++;
	}
	const perBatch = Math.max(calls * 4, 1);
	const samples = [];
	for (let b = 0; b < BATCHES; b++) {
		const t0 = process.hrtime.bigint();
		for (let i = 0; i < perBatch; i++) {
			await call();
			clearLockedPorts();
		}
		samples.push(Number(process.hrtime.bigint() - t0) / perBatch);
	}
	samples.sort((a, b) => a - b);
	return samples[Math.floor(BATCHES / 2)];
}

function report(name, ns) {
	console.log(`${name}\t${PEER}\t${ns.toFixed(0)}`);
}

function expect(got, want, what) {
	if (got !== want) {
		throw new Error(`${what}: get-port answered ${got}, expected ${want}`);
	}
}

// Held the way the component's benchmark holds them: listening on 127.0.0.1.
function hold(port) {
	return new Promise((resolve, reject) => {
		const server = net.createServer();
		server.on('error', reject);
		server.listen({port, host: '127.0.0.1'}, () => resolve(server));
	});
}

report('is-free-port, free port', await perCall(async () => expect(await getPort({port: free}), free, 'free port')));

// get-port has no strict mode: a held port is answered with another one, the
// OS's choice, after the held one fails.
const holder = await hold(0);
const held = holder.address().port;
report('is-free-port, held port', await perCall(async () => {
	const port = await getPort({port: held});
	if (port === held) {
		throw new Error('get-port answered the held port');
	}
}));
holder.close();

const block = [];
for (let port = start; port < start + 999; port++) {
	block.push(await hold(port)); // eslint-disable-line no-await-in-loop
}
report('get-free-port, 1000 candidates, first 999 held', await perCall(async () =>
	expect(await getPort({port: portNumbers(start, start + 999)}), start + 999, 'range')));
for (const server of block) {
	server.close();
}

report('get-free-port(none, false), OS choice', await perCall(async () => {
	const port = await getPort();
	if (!(port > 0)) {
		throw new Error(`no port: ${port}`);
	}
}));
