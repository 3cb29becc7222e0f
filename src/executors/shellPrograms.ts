/**
 * The shell executor's allow-list, checked and resolved once at startup: every program becomes an
 * absolute path (a task never searches PATH), programs that can run other programs through their
 * arguments are refused unless explicitly opted in, and children get a minimal environment.
 */
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, isAbsolute, join, normalize } from 'node:path';
import { ShellConfigError } from '../errors.js';

/**
 * Programs that run other programs when given the right arguments (`sed '1e cmd'`,
 * `awk 'BEGIN{system(…)}'`, `tar --checkpoint-action=exec=…`, `find -exec`, `git -c core.pager=…`,
 * `ssh … cmd`, interpreters, wrappers such as `nice cmd`): allowing one allows everything.
 */
const EXEC_CAPABLE = new Set([
  'sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'csh', 'tcsh', 'fish', 'ash', 'busybox', 'toybox',
  'env', 'xargs', 'find', 'sed', 'awk', 'gawk', 'mawk', 'nawk', 'm4', 'ed', 'ex', 'vi', 'vim', 'nvim', 'emacs',
  'less', 'more', 'man', 'tar', 'zip', 'git', 'rsync', 'ssh', 'scp', 'sftp', 'make', 'gmake',
  'nice', 'ionice', 'timeout', 'nohup', 'setsid', 'stdbuf', 'time', 'taskset', 'chrt', 'flock',
  'watch', 'strace', 'ltrace', 'gdb', 'script', 'expect', 'parallel', 'sudo', 'su', 'doas', 'runuser',
  'chroot', 'unshare', 'nsenter', 'systemd-run', 'at', 'batch', 'crontab', 'docker', 'podman', 'kubectl',
  'npm', 'npx', 'yarn', 'pnpm', 'pip', 'pip3', 'deno', 'bun', 'java', 'jshell', 'Rscript', 'R', 'julia',
  'view', 'rview', 'vimdiff', 'editor', 'nano', 'pico', 'setarch', 'linux32', 'linux64', 'socat', 'wget',
  'gtar', 'gsed', 'gfind', 'gawk', 'ld.so', 'busctl', 'dbus-send', 'bwrap', 'firejail', 'valgrind', 'perf',
  'tmux', 'screen', 'gvim', 'rvim', 'pkexec', 'sg', 'newgrp', 'xdg-open', 'open',
  // Through an option: split --filter, sort --compress-program, cpio --rsh-command, tcpdump -z,
  // dpkg --pre-invoke, apt -o …::Pre-Invoke, openssl engines, nc -e, prlimit/numactl/capsh cmd,
  // a pager or `!cmd` in a client (ftp, sqlite3 .shell, psql \!, mysql system), compilers' -wrapper.
  'split', 'sort', 'cpio', 'tcpdump', 'dpkg', 'apt', 'apt-get', 'aptitude', 'rpm', 'openssl', 'nc', 'ncat',
  'netcat', 'prlimit', 'numactl', 'capsh', 'cgexec', 'chpst', 'start-stop-daemon', 'run-parts', 'daemonize',
  'rlwrap', 'ftp', 'sqlite3', 'psql', 'mysql', 'mariadb', 'gnuplot', 'dc', 'journalctl', 'systemctl', 'pg',
  'most', 'w3m', 'lynx', 'elinks', 'links', 'mail', 'mailx', 'mutt', 'gcc', 'g++', 'cc', 'c++', 'clang',
  'cmake', 'ninja', 'cargo', 'go', 'gem', 'bundle', 'rake', 'irb', 'cpan', 'erl', 'escript', 'ghci', 'guile',
  'sbcl', 'ocaml', 'openvpn', 'logrotate', 'ssh-keygen', 'ip', 'nmap', 'hg', 'svn', 'ldconfig', 'busybox',
  // Found by a second black-box round: setpriv cmd, cpp/c89/c99 -wrapper, diff3/sdiff --diff-program,
  // install --strip-program, prove --exec, rustc -C linker=, gpgtar --gpg, gpg-agent --daemon cmd,
  // Python scripts that run code (pdb, pydoc), ldd (runs the loader on its argument).
  'setpriv', 'cpp', 'c89', 'c99', 'diff3', 'sdiff', 'install', 'prove', 'rustc', 'rustdoc', 'rustup', 'cargo',
  'gpgtar', 'gpg-agent', 'gpg', 'corepack', 'ldd', 'pdb', 'pydoc', 'ipython', 'jupyter', 'tclsh', 'expect',
  // Found by a security review (each ran a command, or can, from task text alone): wrappers that run
  // their arguments, tools that run an editor/pager/helper or load a library (curl --engine), and
  // daemons that start themselves outside the task's process group (ssh-agent, dirmngr).
  'ssh-agent', 'choom', 'memusage', 'sotruss', 'fakeroot', 'fakeroot-sysv', 'fakeroot-tcp', 'dbus-run-session',
  'dbus-launch', 'sensible-editor', 'sensible-pager', 'sensible-browser', 'select-editor', 'scriptlive',
  'scriptreplay', 'gpg-connect-agent', 'gpgconf', 'dirmngr', 'curl', 'systemd-cat', 'systemd-inhibit',
  'systemd-socket-activate', 'runcon', 'gdbserver', 'tini', 'dumb-init', 'gosu', 'su-exec', 'catatonit',
  'eatmydata', 'faketime', 'ccache', 'xvfb-run', 'proxychains', 'proxychains4', 'chronic', 'ifne', 'pee',
  'lckdo', 'zrun', 'vipe', 'enosys', 'pipesz', 'setpgid', 'xtrace', 'coredumpctl', 'perldoc', 'perlbug',
  'apt-key', 'apt-config', 'apt-cache', 'groff', 'patch', 'zless', 'zmore', 'pager', 'www-browser', 'x-www-browser',
  // Found by a code review: pandoc --filter, tcc -run, lldb, interpreters and build tools that run
  // code or their arguments (runghc, octave, jrunscript, uv/uvx, pipx, poetry, tsx, ts-node, dotnet,
  // swift, elixir, mvn, gradle, ansible), clients that run commands (lftp !, sshpass, unbuffer),
  // systemd's run0 and machinectl shell, and shells installed as binaries of their own.
  'pandoc', 'tcc', 'lldb', 'octave', 'octave-cli', 'ghc', 'runghc', 'runhaskell', 'stack', 'cabal', 'jrunscript',
  'uv', 'uvx', 'pipx', 'poetry', 'pipenv', 'tsx', 'ts-node', 'dotnet', 'swift', 'elixir', 'iex', 'mix', 'mvn',
  'gradle', 'ansible', 'ansible-playbook', 'lftp', 'unbuffer', 'sshpass', 'run0', 'machinectl', 'yash', 'posh',
  'rc', 'es', 'elvish', 'nu', 'xonsh', 'oksh', 'loksh', 'scala', 'kotlin', 'groovy', 'clojure', 'racket', 'scheme',
]);
/** Versioned or target-prefixed builds of those (gcc-12, x86_64-linux-gnu-gcc-12, pdb3, pydoc3.11). */
const EXEC_CAPABLE_BUILDS = /^([\w.]+-)*(gcc|g\+\+|cc|c\+\+|cpp|clang(\+\+)?|ld|pdb|pydoc|ipython)(-?[\d.]+)?(\.(bfd|gold|lld|mold))?$/;
/**
 * Interpreter families, with or without a version suffix, and Debian's target-named builds of them
 * (python3, python3.12, perl5.36, perl5.36-x86_64-linux-gnu: a full perl, not a link to one).
 */
const EXEC_CAPABLE_FAMILY = /^(python|pypy|perl|cpan|ruby|php|lua|luajit|node|nodejs|tclsh|wish|pwsh|osascript)[\d.]*(-[\w.-]+)?$/;
/** Multi-call binaries act as the applet named by argv[0] (the link we run), not as themselves. */
const MULTI_CALL = new Set(['busybox', 'toybox']);

/** Whether a program name (a basename) can run other programs through its arguments. */
export function isExecCapable(name: string): boolean {
  // Debian names a build after its flavour (vim.basic, vim.tiny): judge the program, not the build.
  const base = name.replace(/\.(basic|tiny|nox|gtk\d*|athena)$/, '');
  return (
    EXEC_CAPABLE.has(base) || EXEC_CAPABLE_FAMILY.test(base) || EXEC_CAPABLE_BUILDS.test(base) || /^ld-linux/.test(base) || /^vim/.test(base)
  );
}


/** The allow-list resolved at startup. */
export interface ResolvedPrograms {
  /** Allow-list entry (bare name or absolute path) → the absolute path that runs. */
  paths: ReadonlyMap<string, string>;
  /** The whole environment of every child: PATH (the resolved programs' directories), HOME, LANG. */
  env: Record<string, string>;
}

/** Options of {@link resolvePrograms}. */
export interface ResolveOptions {
  /** Accept exec-capable programs (only inside a sandbox: they make the allow-list moot). */
  allowExecCapable: boolean;
  /** The environment to resolve against (PATH) and take HOME and LANG from. */
  env: NodeJS.ProcessEnv;
}

/**
 * Resolves every allow-list entry to an absolute path and builds the children's environment.
 * Throws ShellConfigError on an entry that is not found or not executable, on a relative or
 * non-normalized path, and on an exec-capable program unless `allowExecCapable`.
 */
export function resolvePrograms(allow: readonly string[], options: ResolveOptions): ResolvedPrograms {
  const paths = new Map<string, string>();
  for (const entry of allow) {
    const path = resolveEntry(entry, options.env.PATH ?? '');
    if (!options.allowExecCapable) refuseExecCapable(entry, path);
    paths.set(entry, path);
  }
  const env: Record<string, string> = { PATH: [...new Set([...paths.values()].map((p) => dirname(p)))].join(delimiter) };
  if (options.env.HOME !== undefined) env.HOME = options.env.HOME;
  if (options.env.LANG !== undefined) env.LANG = options.env.LANG;
  return { paths, env };
}

function resolveEntry(entry: string, searchPath: string): string {
  if (entry.includes('/')) {
    if (!isAbsolute(entry) || normalize(entry) !== entry) {
      throw new ShellConfigError(`allowed program "${entry}" must be a bare name or a normalized absolute path`);
    }
    if (!isExecutableFile(entry)) throw new ShellConfigError(`allowed program "${entry}" is not an executable file`);
    return entry;
  }
  // Relative PATH entries (including an empty one, meaning the working directory) are skipped:
  // what they name would change with the directory a task runs in.
  for (const dir of searchPath.split(delimiter)) {
    if (!isAbsolute(dir)) continue;
    const candidate = join(dir, entry);
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new ShellConfigError(`allowed program "${entry}" is not found on PATH`);
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Checks the name as allowed and the file it really is (`awk` → gawk, an alias of `sh`…). */
function refuseExecCapable(entry: string, path: string): void {
  const real = basename(realpathSync(path));
  const names = [basename(path), ...(MULTI_CALL.has(real) ? [] : [real])];
  const found = names.find(isExecCapable);
  if (found === undefined) return;
  const what = found === basename(path) ? `"${entry}"` : `"${entry}" (${found})`;
  throw new ShellConfigError(
    `allowed program ${what} can run other programs through its arguments, which bypasses the allow-list; ` +
      'remove it, or opt in with --allow-exec-capable (allowExecCapable) and run the executor in a sandbox',
  );
}
