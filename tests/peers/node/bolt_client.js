#!/usr/bin/env node
'use strict';
// A SOFA RPC client (sofa-rpc-node 2.10.0 RpcClient, Bolt v1, hessian2) that connects
// straight to HOST:PORT (the consumer's `serverHost` option: no registry, no
// zookeeper), runs one case and prints one JSON line. Exit 0 when the case held.
//
//   node bolt_client.js [OPTIONS] HOST:PORT CASE [ARGS]
//
// Cases:
//   echo N C        N calls of echo(String), C in flight at once on the client's one
//                   connection; each answer must be "<tag>:<its own request>".
//                   JSON: calls, matched, mismatched, errors, error_samples,
//                   tags {tag: count}, connections, p50_ms, p99_ms, max_ms, ms
//   sleep MS        one sleep(MS) call that must succeed
//   timeout MS T    sleep(MS) with a T ms response timeout: must fail with the
//                   client's RpcResponseTimeoutError (defaults 2000 300)
//   fail            fail() must come back as an error carrying the server's message
//   no_method       an unknown method must come back as an error (not a timeout)
//   heartbeat       one echo, then the library's own Bolt heartbeat
//                   (RpcConnection#heartbeat); its ack must carry the same id
//   capture         echo("hello"), fail(), heartbeat, in sequence (for fixtures)
// Options (before HOST:PORT or after the case):
//   --service NAME     interface (default com.mosn.test.EchoService)
//   --version V        service version (default 1.0)
//   --timeout MS       response timeout per call (default 3000)
//   --size BYTES       pad each echo request with BYTES more characters
//   --expect-tag TAG   echo: every answer must carry this tag

const { parseArgs, usage, runClient } = require('./common');

const { pos, opts } = parseArgs(process.argv.slice(2));
if (pos.length < 2) usage('usage: bolt_client.js [OPTIONS] HOST:PORT CASE [ARGS]');

runClient({
  protocol: require('sofa-bolt-node'),
  target: pos[0],
  interfaceName: opts.service || 'com.mosn.test.EchoService',
  version: opts.version || '1.0',
  group: 'SOFA',
  kase: pos[1],
  caseArgs: pos.slice(2),
  opts,
}).catch(err => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(err && err.stack || err) }) + '\n');
  process.exit(1);
});
