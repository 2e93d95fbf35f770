<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Where in-place requests spend their time: the wall time of each phase of the Kernel's request
 * cycle, per entry script, averaged over every `$every` requests and appended to a file as one
 * JSON line (with the worker's pid and the number of PHP garbage collector runs in that window:
 * the collector's time falls in whichever phase triggered it). Off unless Options::$phasesFile
 * names the file (NEXTCLOUD_PHASES); see docs/nextcloud.md.
 */
final class Phases
{
    /** @var array<string, array<string, int>> nanoseconds per script and phase since the last line */
    private array $sums = [];
    /** @var array<string, int> requests per script since the last line */
    private array $counts = [];
    private int $requests = 0;
    private int $gcRuns;
    private int $last = 0;
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

    /** A request starts running `$script` (the clock of its first phase starts now). */
    public function start(string $script): void
    {
        $this->script = $script;
        $this->last = hrtime(true);
    }

    /** The phase named `$phase` ended now; the next one starts. */
    public function mark(string $phase): void
    {
        $now = hrtime(true);
        $this->sums[$this->script][$phase] = ($this->sums[$this->script][$phase] ?? 0) + ($now - $this->last);
        $this->last = $now;
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
            $us = array_map(static fn (int $ns): float => round($ns / 1000 / $n, 1), $phases);
            $us['total'] = round(array_sum($phases) / 1000 / $n, 1);
            $scripts[$script] = ['requests' => $n, 'us' => $us];
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
        $this->sums = $this->counts = [];
        $this->requests = 0;
        $this->gcRuns = $runs;
    }
}
