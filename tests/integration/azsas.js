// azsas.js - prints an Azure Storage SAS token (no leading '?'), made
// with the account key the way the Azure docs define it (version
// 2021-08-06), for the integration tests against Azurite.
//
//   node azsas.js account ACCOUNT KEY_BASE64 EXPIRY_ISO
//       an account SAS for the blob service: containers and objects,
//       read/write/create/list (test setup only)
//   node azsas.js blob ACCOUNT KEY_BASE64 EXPIRY_ISO CONTAINER BLOB
//       a service SAS reading one blob (sr=b, sp=r)
'use strict';
const crypto = require('node:crypto');

const [kind, account, key, expiry, container, blob] = process.argv.slice(2);
const sv = '2021-08-06';
const sign = (s) =>
  crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(s, 'utf8').digest('base64');
const q = (o) =>
  Object.entries(o)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');

if (kind === 'account') {
  const p = { ss: 'b', srt: 'sco', sp: 'rwdlac', se: expiry, spr: 'https,http' };
  const sts = [account, p.sp, p.ss, p.srt, '', p.se, '', p.spr, sv, '', ''].join('\n');
  process.stdout.write(q({ sv, ss: p.ss, srt: p.srt, sp: p.sp, se: p.se, spr: p.spr, sig: sign(sts) }) + '\n');
} else if (kind === 'blob') {
  const res = `/blob/${account}/${container}/${blob}`;
  const sts = ['r', '', expiry, res, '', '', 'https,http', sv, 'b', '', '', '', '', '', '', ''].join('\n');
  process.stdout.write(q({ sv, sr: 'b', sp: 'r', se: expiry, spr: 'https,http', sig: sign(sts) }) + '\n');
} else {
  process.stderr.write('usage: azsas.js account|blob ACCOUNT KEY EXPIRY [CONTAINER BLOB]\n');
  process.exit(2);
}
