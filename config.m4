dnl rr is a Rust crate: cargo builds the module. This file and Makefile.frag let
dnl phpize, pecl and PIE drive that build (phpize, configure, make, make install).

PHP_ARG_ENABLE([rr],
  [whether to enable rr],
  [AS_HELP_STRING([--disable-rr], [Do not build the rr extension])],
  [yes])

if test "$PHP_RR" != "no"; then
  if test "$PHP_THREAD_SAFETY" = "yes"; then
    AC_MSG_ERROR([rr supports only non-thread-safe (NTS) builds of PHP])
  fi

  dnl rustup installs into $CARGO_HOME/bin, which is often not on the PATH of
  dnl non-login shells (sudo, CI, PIE). CARGO=/path/to/cargo overrides the search.
  AC_PATH_PROG([CARGO], [cargo], [no], [$PATH$PATH_SEPARATOR${CARGO_HOME:-$HOME/.cargo}/bin])
  if test "$CARGO" = "no"; then
    AC_MSG_ERROR([cargo not found: install Rust from rustup (https://rustup.rs)])
  fi

  dnl ext-php-rs's build script needs the php-config and php of the PHP we build
  dnl for. PIE passes an absolute --with-php-config; the default is a bare word.
  AC_MSG_CHECKING([for the php-config that cargo will use])
  case $PHP_PHP_CONFIG in
    */*) RR_PHP_CONFIG=$PHP_PHP_CONFIG ;;
    *) RR_PHP_CONFIG=`which "$PHP_PHP_CONFIG" 2>/dev/null` ;;
  esac
  if test -z "$RR_PHP_CONFIG" || test ! -x "$RR_PHP_CONFIG"; then
    AC_MSG_ERROR([php-config not found: pass --with-php-config=/path/to/php-config])
  fi
  RR_PHP_CONFIG="`cd \`dirname "$RR_PHP_CONFIG"\` && pwd`/`basename "$RR_PHP_CONFIG"`"
  AC_MSG_RESULT([$RR_PHP_CONFIG])

  dnl When they are the php-config and php on PATH, leave PHP and PHP_CONFIG unset,
  dnl as a plain `cargo build` does: the build script reruns (and rr recompiles)
  dnl whenever they change, so this lets a build reuse an existing target dir.
  rr_path_php_config=`which php-config 2>/dev/null`
  rr_path_php=`which php 2>/dev/null`
  if test -n "$rr_path_php_config" && test "$rr_path_php_config" -ef "$RR_PHP_CONFIG" &&
     test -n "$rr_path_php" && test "$rr_path_php" -ef "$PHP_EXECUTABLE"; then
    RR_CARGO_ENV="env -u PHP -u PHP_CONFIG"
  else
    RR_CARGO_ENV="env PHP=$PHP_EXECUTABLE PHP_CONFIG=$RR_PHP_CONFIG"
  fi

  dnl RR_CARGO_TARGET_DIR (at configure or make time) reuses an existing build.
  RR_CARGO_TARGET_DIR_DEFAULT=${RR_CARGO_TARGET_DIR:-$abs_builddir/target}

  PHP_NEW_EXTENSION(rr, [], $ext_shared)

  dnl PHP_NEW_EXTENSION wrote libtool compile and link rules for rr.la into
  dnl Makefile.objects. Replace them with the cargo rules of Makefile.frag: two
  dnl recipes for modules/rr.la would override each other or race under make -j.
  : > Makefile.objects
  PHP_ADD_MAKEFILE_FRAGMENT

  PHP_SUBST(CARGO)
  PHP_SUBST(RR_CARGO_ENV)
  PHP_SUBST(RR_CARGO_TARGET_DIR_DEFAULT)
fi
