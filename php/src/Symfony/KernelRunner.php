<?php

declare(strict_types=1);

namespace RR\Symfony;

use RR\Http\HttpWorkerInterface;
use RR\HttpFoundation\RequestFactory;
use RR\HttpFoundation\ResponseSender;
use Symfony\Component\HttpKernel\EventListener\StreamedResponseListener;
use Symfony\Component\HttpKernel\HttpKernelInterface;
use Symfony\Component\HttpKernel\Kernel;
use Symfony\Component\HttpKernel\KernelEvents;
use Symfony\Component\HttpKernel\TerminableInterface;
use Symfony\Component\Runtime\RunnerInterface;
use Symfony\Contracts\Service\ResetInterface;

/**
 * The worker loop for an HttpKernel booted once: each request handled, its answer sent, then
 * `kernel.terminate` (the client already has its answer) and the kernel reset (Symfony's
 * `services_resetter`: every `kernel.reset` service) before the next request.
 */
final class KernelRunner implements RunnerInterface
{
    public function __construct(
        private readonly HttpKernelInterface $kernel,
        private readonly HttpWorkerInterface|\RR\Worker $worker,
    ) {
    }

    public function run(): int
    {
        $requests = new RequestFactory($_SERVER);
        $sender = new ResponseSender($this->worker);
        $this->boot();
        while ($rrRequest = $this->worker->waitRequest()) {
            try {
                $request = $requests->create($rrRequest);
                $response = $this->kernel->handle($request);
                $sender->send($response);
                if ($this->kernel instanceof TerminableInterface) {
                    $this->kernel->terminate($request, $response);
                }
            } catch (\Throwable $e) {
                $this->fail($e);
            } finally {
                $this->reset();
            }
        }

        return 0;
    }

    /**
     * Boots a Symfony kernel before the first request and takes FrameworkBundle's
     * StreamedResponseListener off: it would echo a streamed response while the kernel still
     * handles it, where rr's sender streams it to the client after.
     */
    private function boot(): void
    {
        if (!$this->kernel instanceof Kernel) {
            return;
        }
        $this->kernel->boot();
        $container = $this->kernel->getContainer();
        if (!$container->has('event_dispatcher')) {
            return;
        }
        $dispatcher = $container->get('event_dispatcher');
        foreach ($dispatcher->getListeners(KernelEvents::RESPONSE) as $listener) {
            if (\is_array($listener) && $listener[0] instanceof StreamedResponseListener) {
                $dispatcher->removeListener(KernelEvents::RESPONSE, $listener);
            }
        }
    }

    /** An exception the kernel let through (`catch` off, or from the error handler itself). */
    private function fail(\Throwable $e): void
    {
        try {
            $this->worker->error((string) $e);
        } catch (\RR\Exception) {
            // The answer was already sent (terminate failed): the log is all that is left.
            error_log('rr: ' . $e);
        }
    }

    private function reset(): void
    {
        if ($this->kernel instanceof Kernel) {
            // A booted kernel resets its services on its next boot() after a request.
            $this->kernel->boot();
        } elseif ($this->kernel instanceof ResetInterface) {
            $this->kernel->reset();
        }
    }
}
