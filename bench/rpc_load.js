#!/usr/bin/env node
'use strict';
// Timed RPC load for bench/run-rpc.sh: one sofa-rpc-node RpcClient (the client of
// tests/peers/node, same packages) connected straight to HOST:PORT, calling
// echo(String) for SECONDS with CONCURRENCY calls in flight on its one connection.
// Every answer must be "<tag>:<its own request>". Prints one line:
//   RPCRESULT calls=N errors=N duration_us=N p50_us=N p99_us=N cpu_us=N connections=N
// (calls: answered correctly; errors: failed or wrong answers; duration: first
// call to last answer; cpu_us: this process's user+system CPU over that time). Exit 0 when at least one call succeeded.
//
//   node bench/rpc_load.js bolt|dubbo HOST:PORT SECONDS CONCURRENCY
//
// The services are the test peers' (bolt_server.js, dubbo_server.js): Bolt
// com.mosn.test.EchoService 1.0, Dubbo com.mosn.test.DubboEcho 1.0.0.

const path = require('path');

const PEERS = path.join(__dirname, '..', 'tests', 'peers', 'node');
const peerRequire = name => require(path.join(PEERS, 'node_modules', name));
const { logger, usage } = require(path.join(PEERS, 'common'));
const { RpcClient } = peerRequire('sofa-rpc-node').client;

const SERVICES = {
  bolt: { protocol: 'sofa-bolt-node', interfaceName: 'com.mosn.test.EchoService', version: '1.0', group: 'SOFA' },
  dubbo: { protocol: 'dubbo-remoting', interfaceName: 'com.mosn.test.DubboEcho', version: '1.0.0', group: '' },
};

async function main([proto, target, secs, inflight]) {
  const svc = SERVICES[proto];
  if (!svc || !target || !(Number(secs) > 0) || !(Number(inflight) > 0)) {
    usage('usage: rpc_load.js bolt|dubbo HOST:PORT SECONDS CONCURRENCY');
  }
  const client = new RpcClient({ logger, protocol: peerRequire(svc.protocol) });
  const consumer = client.createConsumer({
    interfaceName: svc.interfaceName, version: svc.version, group: svc.group, serverHost: target,
  });
  await consumer.ready();

  const lat = [];
  let calls = 0;
  let errors = 0;
  let seq = 0;
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(Number(secs) * 1e9));
  const worker = async () => {
    while (process.hrtime.bigint() < end) {
      const msg = 'm' + seq++;
      const t = process.hrtime.bigint();
      try {
        const res = await consumer.invoke('echo', [{ $class: 'java.lang.String', $: msg }]);
        if (typeof res === 'string' && res.endsWith(':' + msg)) {
          calls++;
          lat.push(Number(process.hrtime.bigint() - t) / 1000);
        } else {
          errors++;
        }
      } catch (err) {
        if (errors++ < 3) logger.warn('call failed: %s', err && err.message);
      }
    }
  };
  await Promise.all(Array.from({ length: Number(inflight) }, worker));
  const duration = Number(process.hrtime.bigint() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  lat.sort((a, b) => a - b);
  const pct = p => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]) : 'nan');
  process.stdout.write(`RPCRESULT calls=${calls} errors=${errors} duration_us=${Math.round(duration)} ` +
    `p50_us=${pct(0.5)} p99_us=${pct(0.99)} cpu_us=${cpu.user + cpu.system} connections=${client.connectionManager.connections.size}\n`);
  process.exit(calls > 0 ? 0 : 1);
}

main(process.argv.slice(2)).catch(err => {
  process.stderr.write('rpc_load.js: ' + (err && err.stack || err) + '\n');
  process.exit(1);
});
