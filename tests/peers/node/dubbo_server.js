#!/usr/bin/env node
'use strict';
// A Dubbo provider (dubbo-remoting 2.1.4 under sofa-rpc-node 2.10.0's RpcServer: Dubbo
// magic 0xdabb, hessian2) on 127.0.0.1 for black-box tests.
//
//   node dubbo_server.js PORT [--service NAME] [--version V] [--group G] [--tag TAG]
//
// PORT 0 picks a free port. Serves NAME (default com.mosn.test.DubboEcho), version V
// (default 1.0.0): a request is routed by "path:version" from its body, so a consumer
// must send that version; the group is not checked (sofa-rpc-node keys services by
// interface and version only). Methods:
//   echo(String s)  -> "<TAG>:<s>"              (TAG default "dubbo")
//   sleep(int ms)   -> "<TAG>:slept <ms>" after ms milliseconds
//   fail()          -> throws: a Dubbo response with status SERVER_ERROR (80) and the
//                      message as a hessian string
// Prints "READY <port>", then event lines (CONN, CLOSE, CALL with the attachments as
// "props", HEARTBEAT; see common.js). Exits when stdin reaches EOF, on SIGTERM, SIGINT.

const { parseArgs, usage, serve } = require('./common');

const { pos, opts } = parseArgs(process.argv.slice(2));
if (pos.length !== 1) usage('usage: dubbo_server.js PORT [--service NAME] [--version V] [--group G] [--tag TAG]');

serve({
  protocol: require('dubbo-remoting'),
  port: Number(pos[0]),
  interfaceName: opts.service || 'com.mosn.test.DubboEcho',
  version: opts.version || '1.0.0',
  group: opts.group || '',
  tag: opts.tag || 'dubbo',
}).catch(err => {
  process.stderr.write('dubbo_server.js: ' + (err && err.stack || err) + '\n');
  process.exit(1);
});
