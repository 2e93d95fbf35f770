<?php

declare(strict_types=1);

namespace RR\Nextcloud;

/**
 * Static properties that php-fpm starts fresh for each request (queued scripts and styles, the
 * cached CSRF token of OCP\Util::callRegister(), incognito mode): their values after boot are
 * put back after each request. A class first loaded during a request gets its declared default.
 */
final class Statics
{
    /** Static properties of Nextcloud's that only live for one request under php-fpm. */
    public const PER_REQUEST = [
        \OCP\Util::class => ['scriptsInit', 'scripts', 'scriptDeps', 'token', 'shareManager', 'needUpgradeCache'],
        // Services and per-request caches kept in statics: fetched again from the container.
        \OC_Helper::class => ['cacheFactory', 'quotaIncludeExternalStorage'],
        // The storage factory keeps the wrappers public.php adds (a share's permission mask).
        \OC\Files\Filesystem::class => [
            'loader', 'mounts', 'defaultInstance', 'validator', 'normalizedPathCache',
            'logWarningWhenAddingStorageWrapper',
        ],
        \OCA\Files\App::class => ['navigationManager'],
        // The admin's "allow resharing" setting, read once per request.
        \OC\Share\Constants::class => ['isResharingAllowed'],
        \OCA\Files_Versions\Storage::class => ['application'],
        \OC\Files\Cache\Storage::class => ['globalCache'],
        \OC_User::class => ['incognitoMode'],
        \OC_Util::class => ['styles', 'headers'],
        // Legacy hooks connected during a request.
        \OC_Hook::class => ['registered'],
        // Resource locators collect the page's CSS and JS files.
        \OC\TemplateLayout::class => ['cssLocator', 'jsLocator'],
    ];

    /** @var array<class-string, array<string, mixed>> */
    private array $boot = [];

    /**
     * Per class, once it is loaded: a closure bound to it that writes the given values to its
     * static properties (those it declares; the others are skipped, as they would be read).
     *
     * @var array<class-string, \Closure(array<string, mixed>): void>
     */
    private array $writers = [];

    /**
     * The values each loaded class gets back: its boot values, or for a class loaded after
     * boot its declared defaults (looked up once).
     *
     * @var array<class-string, array<string, mixed>>
     */
    private array $values = [];

    /** @param array<class-string, list<string>> $properties */
    public function __construct(private readonly array $properties = self::PER_REQUEST)
    {
    }

    public function snapshot(): void
    {
        foreach ($this->properties as $class => $names) {
            if (!class_exists($class, false)) {
                continue;
            }
            foreach ($names as $name) {
                $this->boot[$class][$name] = Privates::getStatic($class, $name);
            }
        }
    }

    public function restore(): void
    {
        foreach ($this->properties as $class => $names) {
            if (isset($this->writers[$class])) {
                ($this->writers[$class])($this->values[$class]);
                continue;
            }
            if (!class_exists($class, false)) {
                continue;
            }
            $values = [];
            $defaults = null;
            foreach ($names as $name) {
                if (array_key_exists($name, $this->boot[$class] ?? [])) {
                    $values[$name] = $this->boot[$class][$name];
                } else {
                    $defaults ??= (new \ReflectionClass($class))->getDefaultProperties();
                    $values[$name] = $defaults[$name] ?? null;
                }
            }
            $this->values[$class] = $values;
            $this->writers[$class] = Privates::in($class, static function (array $values) use ($class): void {
                foreach ($values as $name => $value) {
                    if (property_exists($class, $name)) {
                        $class::$$name = $value;
                    }
                }
            });
            ($this->writers[$class])($values);
        }
    }

}
