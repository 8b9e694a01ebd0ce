#!/usr/bin/env node
'use strict';
// A Dubbo consumer (sofa-rpc-node 2.10.0 RpcClient with the dubbo-remoting 2.1.4
// protocol: magic 0xdabb, hessian2) that connects straight to HOST:PORT (`serverHost`,
// no registry), runs one case and prints one JSON line. Exit 0 when the case held.
//
//   node dubbo_client.js [OPTIONS] HOST:PORT CASE [ARGS]
//
// Cases and JSON as in bolt_client.js: echo N C, sleep MS, timeout MS T, fail,
// no_method, heartbeat (a Dubbo heartbeat event, flag 0xe2, answered with flag 0x22),
// capture.
// Options:
//   --service NAME     interface (default com.mosn.test.DubboEcho)
//   --version V        service version (default 1.0.0)
//   --group G          the "group" attachment (default empty)
//   --timeout MS, --size BYTES, --expect-tag TAG   as in bolt_client.js

const { parseArgs, usage, runClient } = require('./common');

const { pos, opts } = parseArgs(process.argv.slice(2));
if (pos.length < 2) usage('usage: dubbo_client.js [OPTIONS] HOST:PORT CASE [ARGS]');

runClient({
  protocol: require('dubbo-remoting'),
  target: pos[0],
  interfaceName: opts.service || 'com.mosn.test.DubboEcho',
  version: opts.version || '1.0.0',
  group: opts.group || '',
  kase: pos[1],
  caseArgs: pos.slice(2),
  opts,
}).catch(err => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(err && err.stack || err) }) + '\n');
  process.exit(1);
});
