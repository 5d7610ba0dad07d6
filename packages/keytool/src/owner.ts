import { execFileSync } from 'node:child_process';

export interface Owner {
  uid: number;
  gid: number;
  user: string;
  group: string;
}

function getent(database: 'passwd' | 'group', key: string): string[] | undefined {
  try {
    const line = execFileSync('getent', [database, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
    return line ? line.split(':') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Resolve "user", "user:group", "uid:gid" through the system's user database (NSS,
 * via getent). Without a group, the user's primary group is used.
 */
export function resolveOwner(spec: string): Owner {
  const [userPart, groupPart] = spec.split(':', 2);
  if (!userPart) throw new Error(`bad owner "${spec}": expected user or user:group`);
  const pw = getent('passwd', userPart);
  if (!pw) throw new Error(`unknown user "${userPart}"`);
  const uid = Number(pw[2]);
  let gid = Number(pw[3]);
  let group = getent('group', String(gid))?.[0] ?? String(gid);
  if (groupPart) {
    const gr = getent('group', groupPart);
    if (!gr) throw new Error(`unknown group "${groupPart}"`);
    gid = Number(gr[2]);
    group = gr[0] as string;
  }
  return { uid, gid, user: pw[0] as string, group };
}
