/*
 * exports.c - what a shared object exports, read from its ELF dynamic
 * symbol table with <elf.h> (no binutils at run time).
 *
 * A plugin must export exactly its descriptor: anything else in .dynsym can
 * collide with the host's or another plugin's symbols and is ABI surface
 * nobody promised to keep. The file is mapped read-only and every offset is
 * bounds-checked, so a truncated or hostile file yields an error, not a
 * crash. ELF32 and ELF64 of either byte order the host runs are handled.
 */
#include "config.h"

#include <elf.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kit.h"

/* Symbols the linker defines in every shared object on some toolchains, and
 * AddressSanitizer's ODR indicators ("__odr_asan.<global>") of a sanitizer
 * build: not the plugin's own surface. */
static int linker_symbol(const char *name)
{
	static const char *const names[] = {"_init", "_fini", "_edata", "_end", "__bss_start",
					    NULL};
	size_t i;

	if (strncmp(name, "__odr_asan", 10) == 0)
		return 1;
	for (i = 0; names[i]; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

/* Whether [off, off + len) lies inside a file of `size` bytes. */
static int inside(size_t size, uint64_t off, uint64_t len)
{
	return off <= size && len <= size - off;
}

/* One parser per ELF class, generated from the same text. */
#define DEFINE_SCAN(NAME, EHDR, SHDR, SYM, ST_BIND, ST_TYPE)                                   \
	static json_t *NAME(const unsigned char *map, size_t size, const char *allowed,       \
			    const char **why)                                                 \
	{                                                                                      \
		const EHDR *eh = (const EHDR *)map;                                            \
		const SHDR *sh;                                                                \
		json_t *extra;                                                                 \
		size_t i, j;                                                                   \
		int found = 0;                                                                 \
                                                                                               \
		if (size < sizeof(EHDR) || eh->e_shentsize != sizeof(SHDR) ||                 \
		    eh->e_shoff % _Alignof(SHDR) ||                                            \
		    !inside(size, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(SHDR))) {       \
			*why = "no readable section headers (stripped with sstrip?)";         \
			return NULL;                                                           \
		}                                                                              \
		if (eh->e_type != ET_DYN) {                                                    \
			*why = "not a shared object (ET_DYN): link it with -shared";          \
			return NULL;                                                           \
		}                                                                              \
		sh = (const SHDR *)(map + eh->e_shoff);                                        \
		extra = json_array();                                                          \
		for (i = 0; extra && i < eh->e_shnum; i++) {                                   \
			const SHDR *strs;                                                      \
			const SYM *syms;                                                       \
			size_t nsyms;                                                          \
                                                                                               \
			if (sh[i].sh_type != SHT_DYNSYM)                                       \
				continue;                                                      \
			found = 1;                                                             \
			if (sh[i].sh_link >= eh->e_shnum || sh[i].sh_entsize != sizeof(SYM) ||  \
			    sh[i].sh_offset % _Alignof(SYM) ||                                 \
			    !inside(size, sh[i].sh_offset, sh[i].sh_size)) {                   \
				*why = "malformed .dynsym section";                            \
				json_decref(extra);                                            \
				return NULL;                                                   \
			}                                                                      \
			strs = &sh[sh[i].sh_link];                                             \
			if (!inside(size, strs->sh_offset, strs->sh_size) || !strs->sh_size ||  \
			    map[strs->sh_offset + strs->sh_size - 1] != '\0') {                \
				*why = "malformed dynamic string table";                       \
				json_decref(extra);                                            \
				return NULL;                                                   \
			}                                                                      \
			syms = (const SYM *)(map + sh[i].sh_offset);                           \
			nsyms = sh[i].sh_size / sizeof(SYM);                                   \
			for (j = 1; j < nsyms; j++) {                                          \
				const char *name;                                              \
				unsigned bind = ST_BIND(syms[j].st_info);                      \
				unsigned type = ST_TYPE(syms[j].st_info);                      \
                                                                                               \
				if (syms[j].st_shndx == SHN_UNDEF)                             \
					continue;                                              \
				if (bind != STB_GLOBAL && bind != STB_WEAK &&                  \
				    bind != STB_GNU_UNIQUE)                                    \
					continue;                                              \
				if (type == STT_SECTION || type == STT_FILE)                   \
					continue;                                              \
				if (syms[j].st_name >= strs->sh_size)                          \
					continue;                                              \
				name = (const char *)map + strs->sh_offset + syms[j].st_name;  \
				if (strcmp(name, allowed) == 0 || linker_symbol(name))         \
					continue;                                              \
				json_array_append_new(extra, json_string(name));               \
			}                                                                      \
		}                                                                              \
		if (!found) {                                                                  \
			*why = "no dynamic symbol table (.dynsym)";                            \
			json_decref(extra);                                                    \
			return NULL;                                                           \
		}                                                                              \
		return extra;                                                                  \
	}

DEFINE_SCAN(scan64, Elf64_Ehdr, Elf64_Shdr, Elf64_Sym, ELF64_ST_BIND, ELF64_ST_TYPE)
DEFINE_SCAN(scan32, Elf32_Ehdr, Elf32_Shdr, Elf32_Sym, ELF32_ST_BIND, ELF32_ST_TYPE)

json_t *kit_extra_exports(const char *path, const char *allowed, const char **why)
{
	const unsigned char *map;
	json_t *out = NULL;
	struct stat st;
	int fd;
	static const unsigned char host_order =
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		ELFDATA2LSB;
#else
		ELFDATA2MSB;
#endif

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		*why = "cannot open the file";
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (st.st_size < EI_NIDENT) {
		*why = "too small to be an ELF file";
		close(fd);
		return NULL;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		*why = "cannot map the file";
		return NULL;
	}
	if (memcmp(map, ELFMAG, SELFMAG) != 0)
		*why = "not an ELF file";
	else if (map[EI_DATA] != host_order)
		*why = "ELF byte order differs from this host's";
	else if (map[EI_CLASS] == ELFCLASS64)
		out = scan64(map, (size_t)st.st_size, allowed, why);
	else if (map[EI_CLASS] == ELFCLASS32)
		out = scan32(map, (size_t)st.st_size, allowed, why);
	else
		*why = "unknown ELF class";
	munmap((void *)map, (size_t)st.st_size);
	return out;
}
