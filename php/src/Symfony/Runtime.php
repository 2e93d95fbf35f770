<?php

declare(strict_types=1);

namespace RR\Symfony;

use Symfony\Component\HttpKernel\HttpKernelInterface;
use Symfony\Component\Runtime\RunnerInterface;
use Symfony\Component\Runtime\SymfonyRuntime;

/**
 * A Symfony Runtime that serves an HttpKernel from rr's worker loop: select it with
 * `APP_RUNTIME=RR\Symfony\Runtime` (or `extra.runtime.class` in composer.json) and start
 * `php -d extension=rr.so public/index.php`. Consoles and other applications run as under
 * SymfonyRuntime. rr reads its configuration as for any worker (.rr.yaml, RR_CONFIG, `rr.*`
 * ini); the runtime option `rr` (`extra.runtime.rr` in composer.json: RR\Worker options with
 * dotted keys, e.g. `{"http.address": "0.0.0.0:8080"}`) overrides it.
 */
final class Runtime extends SymfonyRuntime
{
    /** @var array<string, mixed>|null */
    private readonly ?array $workerOptions;

    /** @param array<string, mixed> $options SymfonyRuntime's, plus `rr` */
    public function __construct(array $options = [])
    {
        $this->workerOptions = isset($options['rr']) && \is_array($options['rr']) ? $options['rr'] : null;
        parent::__construct($options);
    }

    public function getRunner(?object $application): RunnerInterface
    {
        if ($application instanceof HttpKernelInterface) {
            if (!class_exists(\RR\Worker::class)) {
                throw new \LogicException('RR\Symfony\Runtime serves HTTP with the rr extension, which is not loaded: start php -d extension=rr.so');
            }

            return new KernelRunner($application, new \RR\Worker($this->workerOptions));
        }

        return parent::getRunner($application);
    }
}
