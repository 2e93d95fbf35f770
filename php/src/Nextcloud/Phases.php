<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Where in-place requests spend their time: the wall time (`us`) and the worker's CPU time
 * (`cpu_us`: user + system, from getrusage()) of each phase of the Kernel's request cycle, per
 * entry script, averaged over every `$every` requests and appended to a file as one JSON line
 * (with the worker's pid and the number of PHP garbage collector runs in that window: the
 * collector's time falls in whichever phase triggered it). With several workers on one core the
 * wall time also counts the time the others ran; the CPU time does not. Off unless
 * Options::$phasesFile names the file (NEXTCLOUD_PHASES); see docs/nextcloud.md.
 */
final class Phases
{
    /** @var array<string, array<string, int>> wall nanoseconds per script and phase since the last line */
    private array $sums = [];
    /** @var array<string, array<string, int>> CPU nanoseconds per script and phase since the last line */
    private array $cpuSums = [];
    /** @var array<string, int> requests per script since the last line */
    private array $counts = [];
    private int $requests = 0;
    private int $gcRuns;
    private int $last = 0;
    private int $lastCpu = 0;
    private string $script = '';

    public function __construct(
        private readonly string $file,
        private readonly int $every = 100,
    ) {
        if ($file === '') {
            throw new \InvalidArgumentException('RR\\Nextcloud\\Phases: the file name is empty');
        }
        if ($every < 1) {
            throw new \InvalidArgumentException("RR\\Nextcloud\\Phases: every must be at least 1, got $every");
        }
        $this->gcRuns = gc_status()['runs'];
    }

    /** This process's CPU time so far (user + system), in nanoseconds. */
    private static function cpu(): int
    {
        $usage = getrusage();
        return ($usage['ru_utime.tv_sec'] + $usage['ru_stime.tv_sec']) * 1_000_000_000
            + ($usage['ru_utime.tv_usec'] + $usage['ru_stime.tv_usec']) * 1000;
    }

    /** A request starts running `$script` (the clock of its first phase starts now). */
    public function start(string $script): void
    {
        $this->script = $script;
        $this->last = hrtime(true);
        $this->lastCpu = self::cpu();
    }

    /** The phase named `$phase` ended now; the next one starts. */
    public function mark(string $phase): void
    {
        $now = hrtime(true);
        $cpu = self::cpu();
        $this->sums[$this->script][$phase] = ($this->sums[$this->script][$phase] ?? 0) + ($now - $this->last);
        $this->cpuSums[$this->script][$phase] = ($this->cpuSums[$this->script][$phase] ?? 0) + ($cpu - $this->lastCpu);
        $this->last = $now;
        $this->lastCpu = $cpu;
    }

    /** The request is over: counted, and every `$every` requests a line is written. */
    public function finish(): void
    {
        $this->counts[$this->script] = ($this->counts[$this->script] ?? 0) + 1;
        if (++$this->requests < $this->every) {
            return;
        }
        $runs = gc_status()['runs'];
        $scripts = [];
        foreach ($this->sums as $script => $phases) {
            $n = $this->counts[$script] ?? 1;
            $scripts[$script] = [
                'requests' => $n,
                'us' => self::averages($phases, $n),
                'cpu_us' => self::averages($this->cpuSums[$script], $n),
            ];
        }
        $line = json_encode([
            'pid' => getmypid(),
            'requests' => $this->requests,
            'gc_runs' => $runs - $this->gcRuns,
            'scripts' => $scripts,
        ]);
        if (file_put_contents($this->file, $line . "\n", FILE_APPEND | LOCK_EX) === false) {
            error_log("RR\\Nextcloud\\Phases: could not append to {$this->file}");
        }
        $this->sums = $this->cpuSums = $this->counts = [];
        $this->requests = 0;
        $this->gcRuns = $runs;
    }

    /**
     * Microseconds per request of each phase, and their total.
     *
     * @param array<string, int> $nanoseconds per phase, summed over `$requests` requests
     * @return array<string, float>
     */
    private static function averages(array $nanoseconds, int $requests): array
    {
        $out = array_map(static fn (int $ns): float => round($ns / 1000 / $requests, 1), $nanoseconds);
        $out['total'] = round(array_sum($nanoseconds) / 1000 / $requests, 1);
        return $out;
    }
}
