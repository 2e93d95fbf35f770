<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use PHPUnit\Framework\TestCase;
use RR\Nextcloud\MemoizedAes;

/**
 * RR\Nextcloud\MemoizedAes against phpseclib's own AES (from the Nextcloud install named by
 * RR_NEXTCLOUD_ROOT, whose 3rdparty/ has phpseclib): the same ciphertexts and plaintexts for
 * the same calls, each key derived once until forget().
 */
final class NextcloudMemoizedAesTest extends TestCase
{
    public static function setUpBeforeClass(): void
    {
        $root = (string)getenv('RR_NEXTCLOUD_ROOT');
        if ($root === '' || !is_file($root . '/3rdparty/autoload.php')) {
            self::markTestSkipped('set RR_NEXTCLOUD_ROOT to a Nextcloud install (phpseclib comes from its 3rdparty/)');
        }
        require_once $root . '/3rdparty/autoload.php';
        // This process has no rr loaded: its PBKDF2 by PHP (NativePbkdf2Test runs MemoizedAes with rr's).
        require_once \dirname(__DIR__) . '/fixtures/pbkdf2_stand_in.php';
    }

    /** What OC\Security\Crypto::encrypt() does with its cipher, minus the HMAC. */
    private static function encrypt(\phpseclib\Crypt\AES $cipher, string $password, string $iv, string $plaintext): string
    {
        $cipher->setPassword(substr(hash_hkdf('sha512', $password), 0, 32));
        $cipher->setIV($iv);
        return bin2hex((string)$cipher->encrypt($plaintext));
    }

    private static function decrypt(\phpseclib\Crypt\AES $cipher, string $password, string $iv, string $hex): string
    {
        $cipher->setPassword(substr(hash_hkdf('sha512', $password), 0, 32));
        $cipher->setIV($iv);
        return (string)$cipher->decrypt((string)hex2bin($hex));
    }

    public function testSameResultsAsPhpseclibWithEachKeyDerivedOnce(): void
    {
        $plain = new \phpseclib\Crypt\AES();
        $memo = new MemoizedAes();
        // Repeated and interleaved passwords, as a request with a session and an app token does.
        $passwords = ['session-a', 'session-a', 'token-b', 'session-a', 'token-b', 'other-c', 'session-a'];
        foreach ($passwords as $i => $password) {
            $iv = random_bytes(16);
            $text = "{\"LAST_ACTIVITY\":$i,\"requesttoken\":\"" . bin2hex(random_bytes(8)) . '"}';
            $expected = self::encrypt($plain, $password, $iv, $text);
            self::assertSame($expected, self::encrypt($memo, $password, $iv, $text), "encrypt #$i ($password)");
            self::assertSame($text, self::decrypt($memo, $password, $iv, $expected), "decrypt #$i ($password)");
            self::assertSame($text, self::decrypt($plain, $password, $iv, $expected));
        }
        self::assertSame(3, $memo->remembered(), 'one key per distinct password');

        $memo->forget();
        self::assertSame(0, $memo->remembered());
        $iv = random_bytes(16);
        self::assertSame(
            self::encrypt($plain, 'session-a', $iv, 'after forget'),
            self::encrypt($memo, 'session-a', $iv, 'after forget'),
        );
        self::assertSame(1, $memo->remembered());
    }

    public function testOnlyTheKeysOfKeptPasswordsOutliveForget(): void
    {
        $plain = new \phpseclib\Crypt\AES();
        $memo = new MemoizedAes();
        $memo->keep(substr(hash_hkdf('sha512', 'instance-secret'), 0, 32));
        $iv = random_bytes(16);
        foreach (['instance-secret', 'session-a', 'instance-secret'] as $password) {
            self::assertSame(self::encrypt($plain, $password, $iv, 'x'), self::encrypt($memo, $password, $iv, 'x'));
        }
        self::assertSame(2, $memo->remembered());
        $memo->forget();
        self::assertSame(1, $memo->remembered(), 'the kept password\'s key stays, the session\'s goes');
        foreach (['instance-secret', 'session-a'] as $password) {
            self::assertSame(self::encrypt($plain, $password, $iv, 'y'), self::encrypt($memo, $password, $iv, 'y'));
            self::assertSame('y', self::decrypt($memo, $password, $iv, self::encrypt($plain, $password, $iv, 'y')));
        }
        self::assertSame(2, $memo->remembered());
        $memo->forget();
        self::assertSame(1, $memo->remembered());
    }

    /** The engine phpseclib picks, and the cipher names it sets, as phpseclib sets them. */
    private static function engineState(\phpseclib\Crypt\AES $cipher): array
    {
        $out = [];
        foreach (['engine', 'cipher_name_openssl', 'cipher_name_openssl_ecb', 'openssl_emulate_ctr', 'openssl_options'] as $name) {
            $out[$name] = (new \ReflectionProperty(\phpseclib\Crypt\Base::class, $name))->getValue($cipher);
        }
        return $out;
    }

    public function testTheEngineChoiceIsRememberedPerCipherShape(): void
    {
        $plain = new \phpseclib\Crypt\AES();
        $memo = new MemoizedAes();
        $iv = random_bytes(16);
        foreach (['one', 'two', 'three'] as $password) {
            self::assertSame(self::encrypt($plain, $password, $iv, 'text'), self::encrypt($memo, $password, $iv, 'text'));
            self::assertSame(self::engineState($plain), self::engineState($memo));
        }
        self::assertSame(\phpseclib\Crypt\Base::ENGINE_OPENSSL, self::engineState($memo)['engine']);
        self::assertSame(1, $memo->enginesRemembered(), 'one shape: one choice');

        // Another preferred engine is another input: chosen by phpseclib, then remembered too.
        foreach ([$plain, $memo] as $cipher) {
            $cipher->setPreferredEngine(\phpseclib\Crypt\Base::ENGINE_INTERNAL);
        }
        self::assertSame(self::encrypt($plain, 'four', $iv, 'text'), self::encrypt($memo, 'four', $iv, 'text'));
        self::assertSame(\phpseclib\Crypt\Base::ENGINE_INTERNAL, self::engineState($memo)['engine']);
        self::assertSame(self::engineState($plain), self::engineState($memo));
        foreach ([$plain, $memo] as $cipher) {
            $cipher->setPreferredEngine(\phpseclib\Crypt\Base::ENGINE_OPENSSL);
        }
        self::assertSame(self::encrypt($plain, 'five', $iv, 'text'), self::encrypt($memo, 'five', $iv, 'text'));
        self::assertSame(self::engineState($plain), self::engineState($memo));
        // No preferred engine (phpseclib's default), internal, OpenSSL: three inputs.
        self::assertSame(3, $memo->enginesRemembered());
        $memo->forget();
        self::assertSame(3, $memo->enginesRemembered(), 'engine choices hold no key: kept');
    }

    public function testAWrongPasswordStillFails(): void
    {
        $memo = new MemoizedAes();
        $iv = random_bytes(16);
        $hex = self::encrypt($memo, 'right', $iv, 'secret text');
        self::assertNotSame('secret text', self::decrypt($memo, 'wrong', $iv, $hex));
        self::assertSame('secret text', self::decrypt($memo, 'right', $iv, $hex));
    }

    public function testOtherFormsOfSetPasswordAreNotRemembered(): void
    {
        $plain = new \phpseclib\Crypt\AES();
        $memo = new MemoizedAes();
        $iv = random_bytes(16);
        foreach ([$plain, $memo] as $cipher) {
            $cipher->setPassword('password', 'pbkdf2', 'sha256', 'salt', 10);
            $cipher->setIV($iv);
        }
        self::assertSame(bin2hex((string)$plain->encrypt('text')), bin2hex((string)$memo->encrypt('text')));
        self::assertSame(0, $memo->remembered());
    }

    public function testTheKeyLengthIsPartOfWhatIsRemembered(): void
    {
        $plain = new \phpseclib\Crypt\AES();
        $memo = new MemoizedAes();
        $iv = random_bytes(16);
        $expected = [];
        foreach ([$plain, $memo] as $n => $cipher) {
            // PBKDF2 derives key_length bytes: the same password under another key length is another key.
            $cipher->setPassword('same password');
            $cipher->setIV($iv);
            $expected[$n][] = bin2hex((string)$cipher->encrypt('text'));
            $cipher->setKeyLength(256);
            $cipher->setPassword('same password');
            $cipher->setIV($iv);
            $expected[$n][] = bin2hex((string)$cipher->encrypt('text'));
        }
        self::assertSame($expected[0], $expected[1]);
        self::assertNotSame($expected[1][0], $expected[1][1]);
        self::assertSame(2, $memo->remembered());
    }

    public function testRemembersAtMost64Keys(): void
    {
        $memo = new MemoizedAes();
        for ($i = 0; $i < 70; $i++) {
            $memo->setPassword("password $i");
        }
        self::assertSame(64, $memo->remembered());
    }
}
