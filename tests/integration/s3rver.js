// s3rver.js - runs s3rver (@20minutes/s3rver, installed by creds.sh) on
// 127.0.0.1 for the integration tests: a port the system picks, written
// to PORT_FILE once listening (atomically), the given buckets created.
// Credentials are s3rver's own S3RVER/S3RVER; it checks SigV4.
//
//   node s3rver.js MODULE_DIR DATA_DIR PORT_FILE BUCKET...
'use strict';
const fs = require('node:fs');
const [moduleDir, dataDir, portFile, ...buckets] = process.argv.slice(2);
const S3rver = require(`${moduleDir}/node_modules/@20minutes/s3rver`);

new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory: dataDir,
  configureBuckets: buckets.map((name) => ({ name })),
})
  .run()
  .then(({ port }) => {
    fs.writeFileSync(`${portFile}.tmp`, String(port));
    fs.renameSync(`${portFile}.tmp`, portFile);
  })
  .catch((e) => {
    process.stderr.write(`s3rver: ${e.message}\n`);
    process.exit(1);
  });
