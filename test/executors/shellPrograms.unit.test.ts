import { tempDirs } from '../support/tempDirs.js';
import { symlink, writeFile, chmod } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createShellHandler } from '../../src/executors/shellExecutor.js';
import { ShellConfigError } from '../../src/errors.js';
import { isExecCapable, resolvePrograms } from '../../src/executors/shellPrograms.js';

const tempDir = tempDirs('programs');
const env = { PATH: '/usr/bin:/bin' };

describe('exec-capable programs', () => {
  it('knows the programs that run other programs, interpreters with version suffixes included', () => {
    for (const name of ['sh', 'bash', 'env', 'xargs', 'find', 'sed', 'awk', 'gawk', 'perl', 'python3', 'python3.12', 'ruby', 'node', 'tar', 'git', 'rsync', 'ssh', 'make', 'nice', 'timeout', 'nohup', 'strace']) {
      expect(isExecCapable(name), name).toBe(true);
    }
    // Found by review: editors under other names and builds, arch wrappers, the dynamic loader, socat.
    for (const name of ['view', 'rview', 'vim.basic', 'vim.tiny', 'vimdiff', 'editor', 'setarch', 'linux64', 'ld.so', 'ld-linux-x86-64.so.2', 'socat']) {
      expect(isExecCapable(name), name).toBe(true);
    }
    // Through an option: `split --filter=cmd`, `sort --compress-program=cmd`, `dpkg --pre-invoke=cmd`…
    for (const name of ['split', 'sort', 'dpkg', 'apt', 'apt-get', 'openssl', 'cpio', 'tcpdump', 'nc', 'sqlite3', 'psql', 'gcc', 'journalctl',
      'setpriv', 'cpp', 'cpp-12', 'c99', 'gcc-12', 'x86_64-linux-gnu-gcc-12', 'g++-12', 'diff3', 'sdiff', 'install', 'prove', 'rustc', 'gpgtar', 'gpg-agent', 'pdb3', 'pydoc3.11', 'ldd']) {
      expect(isExecCapable(name), name).toBe(true);
    }
    // Found by a security review: each ran `id` (or could) from task text alone on Debian 12.
    for (const name of ['perl5.36-x86_64-linux-gnu', 'cpan5.36-x86_64-linux-gnu', 'ssh-agent', 'choom', 'memusage', 'sotruss', 'fakeroot',
      'dbus-run-session', 'sensible-editor', 'scriptlive', 'gpg-connect-agent', 'curl', 'systemd-cat', 'runcon', 'x86_64-linux-gnu-ld.bfd', 'dirmngr', 'gpgconf']) {
      expect(isExecCapable(name), name).toBe(true);
    }
    // Found by a code review: a filter, a -run, a debugger, runners of code or of their arguments, shells of their own.
    for (const name of ['pandoc', 'tcc', 'lldb', 'runghc', 'octave', 'jrunscript', 'uvx', 'pipx', 'tsx', 'ts-node', 'dotnet', 'mvn', 'gradle',
      'ansible', 'lftp', 'unbuffer', 'sshpass', 'run0', 'machinectl', 'yash', 'posh']) {
      expect(isExecCapable(name), name).toBe(true);
    }
    for (const name of ['echo', 'ls', 'cat', 'head', 'printenv', 'grep', 'wc', 'date', 'du', 'df', 'uname', 'jq']) expect(isExecCapable(name), name).toBe(false);
  });

  it('knows container, privilege, scheduler, package-runner and wrapper programs', () => {
    for (const name of ['docker', 'podman', 'kubectl', 'npx', 'npm', 'pnpm', 'yarn', 'pip', 'sudo', 'su', 'doas', 'pkexec', 'chroot', 'unshare', 'nsenter',
      'systemd-run', 'at', 'crontab', 'flock', 'watch', 'ionice', 'stdbuf', 'taskset', 'tmux', 'screen', 'java', 'wget', 'valgrind', 'perf', 'busctl']) {
      expect(isExecCapable(name), name).toBe(true);
    }
  });

  it('refuses to start with one, naming it and the opt-in', () => {
    // sed '1e cmd', awk 'BEGIN{system(…)}' and tar --checkpoint-action=exec=… need no shell syntax.
    for (const name of ['sed', 'awk', 'tar', 'sh', 'env']) {
      expect(() => createShellHandler({ allow: ['echo', name], env }), name).toThrow(ShellConfigError);
    }
    expect(() => createShellHandler({ allow: ['sed'], env })).toThrow(
      /^allowed program "sed" can run other programs through its arguments, which bypasses the allow-list; remove it, or opt in with --allow-exec-capable/,
    );
    expect(() => createShellHandler({ allow: ['/usr/bin/sed'], env })).toThrow(ShellConfigError);
  });

  it('checks the file a name really is: a harmless-looking link to sh is refused', async () => {
    const dir = await tempDir();
    const sh = resolvePrograms(['sh'], { allowExecCapable: true, env }).paths.get('sh')!;
    await symlink(sh, join(dir, 'harmless'));
    expect(() => createShellHandler({ allow: [join(dir, 'harmless')], env })).toThrow(/"[^"]*harmless" \((sh|dash|bash)\) can run other programs/);
  });

  it('judges a multi-call binary (busybox) by the applet name it is run as: ls is accepted, sh refused', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'busybox'), '#!/bin/sh\necho hi\n');
    await chmod(join(dir, 'busybox'), 0o755);
    await symlink(join(dir, 'busybox'), join(dir, 'ls'));
    await symlink(join(dir, 'busybox'), join(dir, 'sh'));
    expect(resolvePrograms([join(dir, 'ls')], { allowExecCapable: false, env }).paths.get(join(dir, 'ls'))).toBe(join(dir, 'ls'));
    expect(() => resolvePrograms([join(dir, 'sh')], { allowExecCapable: false, env })).toThrow(/can run other programs/);
  });

  it('accepts them with allowExecCapable', () => {
    expect(() => createShellHandler({ allow: ['sed', 'awk', 'sh'], allowExecCapable: true, env })).not.toThrow();
  });
});

describe('resolvePrograms', () => {
  it('resolves names to absolute paths once and gives children PATH of their directories, HOME and LANG only', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'tool'), '#!/bin/sh\n');
    await chmod(join(dir, 'tool'), 0o755);
    const r = resolvePrograms(['tool', 'ls'], { allowExecCapable: false, env: { PATH: `relative:${dir}:/usr/bin:/bin`, HOME: '/h', LANG: 'C', SECRET: 's' } });
    expect(r.paths.get('tool')).toBe(join(dir, 'tool'));
    expect(r.paths.get('ls')).toMatch(/^\/(usr\/)?bin\/ls$/);
    expect(r.env).toEqual({ PATH: `${dir}:${r.paths.get('ls')!.replace(/\/ls$/, '')}`, HOME: '/h', LANG: 'C' });
  });

  it('refuses missing, non-executable, relative and non-normalized entries in one line', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'plain'), 'not executable');
    const cases: Array<[string, string]> = [
      ['nope-xyz', 'allowed program "nope-xyz" is not found on PATH'],
      [join(dir, 'plain'), `allowed program "${join(dir, 'plain')}" is not an executable file`],
      [dir, `allowed program "${dir}" is not an executable file`],
      ['./echo', 'allowed program "./echo" must be a bare name or a normalized absolute path'],
      ['/bin/../bin/echo', 'allowed program "/bin/../bin/echo" must be a bare name or a normalized absolute path'],
    ];
    for (const [entry, message] of cases) {
      expect(() => resolvePrograms([entry], { allowExecCapable: false, env }), entry).toThrow(message);
    }
  });

  it('never finds a program through a relative PATH entry, even one that names the directory holding it', async () => {
    expect(() => resolvePrograms(['ls'], { allowExecCapable: false, env: { PATH: '.:bin:' } })).toThrow('is not found on PATH');
    const dir = await tempDir();
    await writeFile(join(dir, 'tool'), '#!/bin/sh\necho hi\n');
    await chmod(join(dir, 'tool'), 0o755);
    const rel = relative(process.cwd(), dir);
    expect(rel.startsWith('/')).toBe(false);
    expect(() => resolvePrograms(['tool'], { allowExecCapable: false, env: { PATH: rel } })).toThrow('allowed program "tool" is not found on PATH');
    // The same directory, absolute: found.
    expect(resolvePrograms(['tool'], { allowExecCapable: false, env: { PATH: dir } }).paths.get('tool')).toBe(join(dir, 'tool'));
  });
});
