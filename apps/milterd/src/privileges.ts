import { execFileSync } from 'node:child_process';
import { type Owner, resolveOwner } from '@inkan/keytool';

/** The account to run as: user and group, names and numbers. */
export type RunAs = Owner;

/** Resolve "user[:group]" (names or numbers); without a group, the user's primary group. */
export function resolveRunAs(spec: string): RunAs {
  return resolveOwner(spec);
}

/** The group ids an account has once dropPrivileges ran: its group and the user's groups (initgroups). */
export function groupsOf(runAs: RunAs): Set<number> {
  const groups = new Set([runAs.gid]);
  try {
    const listed = execFileSync('id', ['-G', runAs.user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    for (const g of listed.trim().split(/\s+/)) if (/^\d+$/.test(g)) groups.add(Number(g));
  } catch {
    // A user id without a name in the user database has only its group.
  }
  return groups;
}

/** The account to fall back to when root was not told whom to run as. */
export function nobody(): RunAs {
  try {
    return resolveOwner('nobody');
  } catch {
    throw new Error('no "nobody" user to drop privileges to; set UserID');
  }
}

/**
 * Give up root for good: setgid, then initgroups (the user's supplementary groups, e.g.
 * mail for a root:mail 0440 key), then setuid, in that order (setuid first would leave
 * no right to change groups; setuid alone, as the old -u did, keeps root's groups).
 */
export function dropPrivileges(runAs: RunAs): void {
  const p = process as NodeJS.Process & { initgroups?: (user: string | number, extraGroup: string | number) => void };
  if (!p.setgid || !p.initgroups || !p.setuid) throw new Error('changing user needs a POSIX system');
  p.setgid(runAs.gid);
  p.initgroups(runAs.user, runAs.gid);
  p.setuid(runAs.uid);
  if (process.getuid?.() !== runAs.uid || process.geteuid?.() !== runAs.uid || process.getgid?.() !== runAs.gid) {
    throw new Error('privileges were not dropped as asked');
  }
}
