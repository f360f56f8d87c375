/* write_errno FILE VALUE: one open() and one write() of VALUE (no newline added) to FILE, as a
 * shell redirection does, and prints what the kernel answered: "0" on success, else the errno's
 * name ("EBUSY"). Busybox's echo shows no errno, and the e2e guest asserts the kernel's own
 * answers (tests/e2e/README.md). Built static by vfio_guest.sh; exit 0 whenever it could ask. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: write_errno FILE VALUE\n");
    return 2;
  }
  int fd = open(argv[1], O_WRONLY);
  if (fd < 0) {
    printf("%s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
    return 0;
  }
  ssize_t n = write(fd, argv[2], strlen(argv[2]));
  int e = errno;
  close(fd);
  if (n < 0)
    printf("%s\n", strerrorname_np(e) ? strerrorname_np(e) : "E?");
  else
    printf("0\n");
  return 0;
}
