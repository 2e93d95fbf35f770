<?php

declare(strict_types=1);

namespace RR\Http;

/**
 * The `$_SERVER` array of one rr request as php-fpm would fill it: the worker's own at boot,
 * then the request's line, client and headers (`HTTP_*`). Shared by every bridge that hands a
 * request to an application (PSR-7, Symfony HttpFoundation, Laravel).
 */
final class ServerParams
{
    /** @param array<array-key, mixed> $boot `$_SERVER` when the worker started */
    public function __construct(private readonly array $boot)
    {
    }

    /**
     * @param object $request an `RR\Request` or an object with the same public properties
     * @return array<array-key, mixed>
     */
    public function of(object $request): array
    {
        $server = $this->boot;
        $now = microtime(true);
        $server['REQUEST_TIME'] = (int) $now;
        $server['REQUEST_TIME_FLOAT'] = $now;
        $server['REMOTE_ADDR'] = $request->remoteAddr;
        $server['REMOTE_PORT'] = $request->remotePort;
        $server['SERVER_PROTOCOL'] = $request->protocol;
        $server['REQUEST_METHOD'] = $request->method;
        $server['REQUEST_URI'] = $request->requestUri;
        $server['QUERY_STRING'] = $request->queryString;
        if ($request->https) {
            $server['HTTPS'] = 'on';
        }
        foreach ($request->headers as $name => $values) {
            $name = (string) $name;
            // As nginx and Apache do: X_Real_IP must not pass for (or overwrite) X-Real-IP.
            // Proxy never becomes HTTP_PROXY (httpoxy): under the cli SAPI, Guzzle and Symfony
            // HttpClient take $_SERVER['HTTP_PROXY'] as their proxy.
            if (str_contains($name, '_') || strcasecmp($name, 'proxy') === 0) {
                continue;
            }
            $key = strtoupper(strtr($name, '-', '_'));
            if ($key !== 'CONTENT_TYPE' && $key !== 'CONTENT_LENGTH') {
                $key = 'HTTP_' . $key;
            }
            $server[$key] = implode(', ', $values);
        }

        return $server;
    }
}
