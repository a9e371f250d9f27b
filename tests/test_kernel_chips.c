/* Chip configs (chips.h): every row suits its ISA table, recognition maps known cpuid / MIDR signatures to the
 * right config, ELBO_CHIP forces one or is refused with one line, and GEMM bits are the same under every config
 * of an ISA table (the reason the configs may differ per chip at all). */
#include "test_util.h"

#include "chips.h"
#include "cpu_features.h"
#include "gemm.h"
#include "gemm_depth.h"
#include "kernels.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The architecture whose configs may tune ISA table isa (NULL: not tuned per chip, e.g. scalar). */
static const char *isa_arch(const char *isa)
{
    if (strcmp(isa, "avx2") == 0 || strcmp(isa, "avx512") == 0)
        return "x86_64";
    if (strcmp(isa, "neon") == 0)
        return "aarch64";
    return NULL;
}

/* Whether err holds one line: non-empty, no newline. */
static int one_line(const char *err)
{
    return err[0] != '\0' && strchr(err, '\n') == NULL;
}

/* Every config: a unique name; rows for distinct ISAs of its own architecture that pass elbo_chip_tuning_check
 * against the table they tune (where this CPU runs it); every table of its architecture that runs here gets a
 * row (its own or the generic one), the scalar reference none; applying a config changes only MC, NC and the
 * flags; every FMA table shares the one K blocking and the scalar one keeps its own. */
static void test_chip_configs_valid(void **state)
{
    (void)state;
    char err[512];
    for (size_t i = 0; i < elbo_chip_count(); i++) {
        const elbo_chip_config *c = elbo_chip_at(i);
        assert_non_null(c->name);
        assert_ptr_equal(elbo_chip_by_name(c->name), c);
        for (size_t r = 0; r < ELBO_CHIP_MAX_TUNINGS && c->tuning[r].isa; r++) {
            const elbo_chip_tuning *t = &c->tuning[r];
            const char *arch = isa_arch(t->isa);
            if (!arch || !c->arch || strcmp(arch, c->arch) != 0)
                test_failf("%s: a row for %s, an ISA of another architecture\n", c->name, t->isa);
            assert_ptr_equal(elbo_chip_tuning_for(c, t->isa), t);
            for (size_t q = 0; q < r; q++)
                if (strcmp(c->tuning[q].isa, t->isa) == 0)
                    test_failf("%s: two rows for %s\n", c->name, t->isa);
            const elbo_kernels *k = elbo_kernels_by_name(t->isa);
            if (!k) {
                print_message("%s: the %s row is not checked here (no %s table on this CPU)\n", c->name, t->isa,
                              t->isa);
                continue;
            }
            if (elbo_chip_tuning_check(t, &k->blocking, err, sizeof err) != 0)
                test_failf("%s: %s\n", c->name, err);
        }
        assert_null(c->tuning[ELBO_CHIP_MAX_TUNINGS].isa);
        const elbo_kernels *k;
        for (size_t j = 0; (k = elbo_kernels_available(j)); j++) {
            const char *arch = isa_arch(k->isa);
            const elbo_chip_tuning *t = elbo_chip_tuning_for(c, k->isa);
            if (arch && c->arch && strcmp(arch, c->arch) == 0 && !t)
                test_failf("%s: no row for the %s table (nor a generic one)\n", c->name, k->isa);
            if (!arch)
                assert_null(t);
            elbo_kernels tuned = *k;
            if (elbo_chip_apply(c, &tuned, err, sizeof err) != 0)
                test_failf("%s on %s: %s\n", c->name, k->isa, err);
            assert_int_equal(tuned.blocking.mr, k->blocking.mr);
            assert_int_equal(tuned.blocking.nr, k->blocking.nr);
            assert_int_equal(tuned.blocking.kc, k->blocking.kc);
            assert_int_equal(tuned.blocking.kc_single, k->blocking.kc_single);
            if (t) {
                assert_int_equal(tuned.blocking.mc, t->mc);
                assert_int_equal(tuned.blocking.nc, t->nc);
                assert_int_equal(tuned.blocking.prefetch_next_b, t->prefetch_next_b);
                assert_int_equal(tuned.blocking.in_place_trans_a, t->in_place_trans_a);
                assert_int_equal(tuned.blocking.a_panel_outer, t->a_panel_outer);
            } else {
                assert_memory_equal(&tuned.blocking, &k->blocking, sizeof k->blocking);
            }
        }
    }
    const elbo_kernels *k;
    for (size_t j = 0; (k = elbo_kernels_available(j)); j++) {
        int scalar = strcmp(k->isa, "scalar") == 0;
        assert_int_equal(k->blocking.kc, scalar ? 256 : ELBO_GEMM_FMA_KC);
        assert_int_equal(k->blocking.kc_single, scalar ? 0 : ELBO_GEMM_FMA_KC_SINGLE);
    }
    /* Every built-in architecture has a generic config, and any other gets the untuned one. */
    assert_string_equal(elbo_chip_generic("x86_64")->name, "generic-x86");
    assert_string_equal(elbo_chip_generic("aarch64")->name, "generic-arm64");
    assert_string_equal(elbo_chip_generic("riscv64")->name, "generic");
    assert_null(elbo_chip_tuning_for(elbo_chip_generic("riscv64"), "scalar"));
}

/* elbo_chip_tuning_check refuses, with one line each, the rows that do not suit a table. */
static void test_chip_tuning_check_refuses(void **state)
{
    (void)state;
    const elbo_gemm_blocking bl = {.mr = 6, .nr = 16, .kc = 400, .kc_single = 800};
    static const elbo_chip_tuning bad[] = {
        {.isa = "avx2", .mc = 100, .nc = 4080},      /* MC not a multiple of MR */
        {.isa = "avx2", .mc = 0, .nc = 4080},        /* MC zero */
        {.isa = "avx2", .mc = 168, .nc = 4088},      /* NC not a multiple of NR */
        {.isa = "avx2", .mc = 6, .nc = 4080},        /* one MR: no rows left for an 800-deep single block */
        {.isa = "avx2", .mc = 168, .nc = 16},        /* one NR: likewise for columns */
        {.isa = "avx2", .mc = 6000, .nc = 4080},     /* A block 9.2 MiB */
        {.isa = "avx2", .mc = 168, .nc = 48000},     /* B block 73 MiB */
    };
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (elbo_chip_tuning_check(&bad[i], &bl, err, sizeof err) != -1)
            test_failf("row %zu (MC=%zu NC=%zu) was accepted\n", i, bad[i].mc, bad[i].nc);
        assert_true(one_line(err));
    }
    const elbo_chip_tuning good = {.isa = "avx2", .mc = 12, .nc = 32};
    assert_int_equal(elbo_chip_tuning_check(&good, &bl, err, sizeof err), 0);
}

/* cpuid leaf 1 eax decodes to the display family and model; x86 signatures map to their configs (the vendor
 * counts), unknown chips and vendors to generic-x86. */
static void test_chip_recognize_x86(void **state)
{
    (void)state;
    static const struct {
        unsigned eax, family, model;
    } decode[] = {
        {0x00a00f11, 0x19, 0x01}, /* EPYC 7003 (Milan) */
        {0x00a50f00, 0x19, 0x50}, /* Ryzen 5000 APU (Cezanne) */
        {0x00a10f11, 0x19, 0x11}, /* EPYC 9004 (Genoa) */
        {0x00b00f21, 0x1a, 0x02}, /* EPYC 9005 (Turin) */
        {0x00050654, 0x06, 0x55}, /* Xeon Scalable (Skylake-X) */
        {0x00000f41, 0x0f, 0x04}, /* Pentium 4: family 0xf, no extended family */
        {0x00000543, 0x05, 0x04}, /* Pentium: base family 5 takes no extended model */
    };
    for (size_t i = 0; i < sizeof decode / sizeof decode[0]; i++) {
        unsigned family, model;
        elbo_x86_family_model(decode[i].eax, &family, &model);
        if (family != decode[i].family || model != decode[i].model)
            test_failf("eax 0x%08x: family 0x%x model 0x%x, expected 0x%x 0x%x\n", decode[i].eax, family, model,
                       decode[i].family, decode[i].model);
    }
    static const struct {
        const char *vendor;
        unsigned family, model;
        const char *chip;
    } cases[] = {
        {"AuthenticAMD", 0x19, 0x00, "zen3"},        {"AuthenticAMD", 0x19, 0x01, "zen3"}, /* Milan */
        {"AuthenticAMD", 0x19, 0x0f, "zen3"},        {"AuthenticAMD", 0x19, 0x21, "zen3"}, /* Vermeer */
        {"AuthenticAMD", 0x19, 0x44, "zen3"},        {"AuthenticAMD", 0x19, 0x50, "zen3"}, /* Rembrandt, Cezanne */
        {"AuthenticAMD", 0x19, 0x5f, "zen3"},        {"AuthenticAMD", 0x19, 0x10, "zen4"},
        {"AuthenticAMD", 0x19, 0x11, "zen4"},        {"AuthenticAMD", 0x19, 0x1f, "zen4"}, /* Genoa */
        {"AuthenticAMD", 0x19, 0x61, "zen4"},        {"AuthenticAMD", 0x19, 0x74, "zen4"}, /* Raphael, Phoenix */
        {"AuthenticAMD", 0x19, 0x7f, "zen4"},        {"AuthenticAMD", 0x19, 0xa0, "zen4"}, /* Bergamo/Siena */
        {"AuthenticAMD", 0x19, 0x80, "generic-x86"}, {"AuthenticAMD", 0x1a, 0x02, "zen5"}, /* Turin */
        {"AuthenticAMD", 0x1a, 0x44, "zen5"},        {"AuthenticAMD", 0x1a, 0x24, "zen5"}, /* Granite Ridge, Strix */
        {"AuthenticAMD", 0x17, 0x31, "generic-x86"}, /* Zen 2 (Rome) */
        {"AuthenticAMD", 0x1b, 0x00, "generic-x86"}, /* a later family */
        {"GenuineIntel", 0x06, 0x55, "generic-x86"}, /* Skylake-X */
        {"GenuineIntel", 0x19, 0x01, "generic-x86"}, /* Zen 3's numbers under another vendor */
        {"HygonGenuine", 0x18, 0x01, "generic-x86"}, /* Dhyana */
        {"", 0x19, 0x01, "generic-x86"},             /* no vendor read */
        {"VIA VIA VIA ", 0x06, 0x0f, "generic-x86"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const elbo_chip_config *c = elbo_chip_recognize_x86(cases[i].vendor, cases[i].family, cases[i].model);
        assert_non_null(c);
        if (strcmp(c->name, cases[i].chip) != 0)
            test_failf("%s family 0x%x model 0x%x: %s, expected %s\n", cases[i].vendor, cases[i].family,
                       cases[i].model, c->name, cases[i].chip);
    }
    elbo_cpu_features f = {.arch = "x86_64", .vendor = "AuthenticAMD", .family = 0x1a, .model_number = 0x02};
    assert_string_equal(elbo_chip_recognize(&f)->name, "zen5");
}

/* /proc/cpuinfo text yields the first core's MIDR implementer and part; MIDR signatures map to their configs,
 * unknown ones to generic-arm64. */
static void test_chip_recognize_arm64(void **state)
{
    (void)state;
    static const char cpuinfo[] = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes\n"
                                  "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\n"
                                  "CPU part\t: 0xd0c\nCPU revision\t: 1\n\nprocessor\t: 1\n"
                                  "CPU implementer\t: 0x61\nCPU part\t: 0x022\n";
    unsigned impl = 99, part = 99;
    assert_int_equal(elbo_arm64_midr_from_cpuinfo(cpuinfo, &impl, &part), 0);
    assert_int_equal(impl, 0x41);
    assert_int_equal(part, 0xd0c);
    assert_int_equal(elbo_arm64_midr_from_cpuinfo("processor\t: 0\nmodel name\t: AMD EPYC\n", &impl, &part), -1);
    assert_int_equal(impl, 0);
    assert_int_equal(part, 0);
    assert_int_equal(elbo_arm64_midr_from_cpuinfo("CPU implementer\t: 0x41\n", &impl, &part), -1);
    static const struct {
        unsigned implementer, part;
        const char *chip;
    } cases[] = {
        {0x41, 0xd0c, "neoverse-n1"},   {0x41, 0xd0b, "neoverse-n1"}, /* Cortex-A76 */
        {0x41, 0xd40, "generic-arm64"}, /* Neoverse-V1 */
        {0x41, 0xd07, "generic-arm64"}, /* Cortex-A57 */
        {0x61, 0x022, "generic-arm64"}, /* Apple */
        {0x00, 0x000, "generic-arm64"}, /* MIDR not readable */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = elbo_chip_recognize_arm64(cases[i].implementer, cases[i].part)->name;
        if (strcmp(got, cases[i].chip) != 0)
            test_failf("MIDR 0x%x:0x%x: %s, expected %s\n", cases[i].implementer, cases[i].part, got, cases[i].chip);
    }
    elbo_cpu_features f = {.arch = "aarch64", .midr_implementer = 0x41, .midr_part = 0xd0b};
    assert_string_equal(elbo_chip_recognize(&f)->name, "neoverse-n1");
}

/* elbo_chip_choose: no name recognizes; a name of this architecture forces its config; an unknown name or one
 * of another architecture is refused with one line naming it. */
static void test_chip_choose(void **state)
{
    (void)state;
    static const elbo_cpu_features x86 = {.arch = "x86_64", .vendor = "AuthenticAMD", .family = 0x19, .model_number = 0x21};
    static const elbo_cpu_features arm = {.arch = "aarch64"};
    char err[512] = "";
    assert_string_equal(elbo_chip_choose(NULL, &x86, err, sizeof err)->name, "zen3");
    assert_string_equal(elbo_chip_choose("", &x86, err, sizeof err)->name, "zen3");
    assert_string_equal(elbo_chip_choose("zen5", &x86, err, sizeof err)->name, "zen5");
    assert_string_equal(elbo_chip_choose("generic-x86", &x86, err, sizeof err)->name, "generic-x86");
    assert_string_equal(elbo_chip_choose(NULL, &arm, err, sizeof err)->name, "generic-arm64");
    assert_string_equal(elbo_chip_choose("neoverse-n1", &arm, err, sizeof err)->name, "neoverse-n1");
    const struct {
        const char *name;
        const elbo_cpu_features *f;
    } refused[] = {{"zen9", &x86}, {"ZEN3", &x86}, {"neoverse-n1", &x86}, {"zen3", &arm}, {"generic", &arm}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        err[0] = '\0';
        assert_null(elbo_chip_choose(refused[i].name, refused[i].f, err, sizeof err));
        assert_true(one_line(err));
        assert_non_null(strstr(err, refused[i].name));
        print_message("refused: %s\n", err);
    }
}

/* Runs `elbo_kernels_select` in a child with ELBO_CHIP=name and stderr into a pipe: returns the child's exit
 * status (0: selected, the tables built with the config named and carrying its row; 3: refused, the tables
 * built with the recognized config) and its stderr in out. */
static int select_in_child(const char *name, char *out, size_t outlen)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        setenv("ELBO_CHIP", name, 1);
        const elbo_kernels *k = elbo_kernels_select();
        if (!k)
            _exit(!elbo_chip_selected() && elbo_kernels_chip() == elbo_chip_recognize(elbo_cpu_features_get()) ? 3 : 4);
        const elbo_chip_config *c = elbo_kernels_chip();
        const elbo_chip_tuning *t = elbo_chip_tuning_for(c, k->isa);
        int ok = c == elbo_chip_selected() && strcmp(c->name, name) == 0 &&
                 (!t || (k->blocking.mc == t->mc && k->blocking.nc == t->nc &&
                         k->blocking.prefetch_next_b == t->prefetch_next_b &&
                         k->blocking.in_place_trans_a == t->in_place_trans_a &&
                         k->blocking.a_panel_outer == t->a_panel_outer));
        _exit(ok ? 0 : 5);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t got;
    while (n + 1 < outlen && (got = read(fds[0], out + n, outlen - 1 - n)) > 0)
        n += (size_t)got;
    out[n] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ELBO_CHIP forces each config of this CPU's architecture (the selected table carries its row); an unknown
 * name makes elbo_kernels_select return NULL with exactly one line on stderr. Runs first (see main). */
static void test_chip_env_forcing(void **state)
{
    (void)state;
    char out[1024];
    const char *arch = elbo_cpu_features_get()->arch;
    for (size_t i = 0; i < elbo_chip_count(); i++) {
        const elbo_chip_config *c = elbo_chip_at(i);
        if (c->arch ? strcmp(c->arch, arch) != 0 : elbo_chip_generic(arch) != c) /* not for this CPU */
            continue;
        int rc = select_in_child(c->name, out, sizeof out);
        if (rc != 0 || out[0])
            test_failf("ELBO_CHIP=%s: child exit %d, stderr '%s'\n", c->name, rc, out);
    }
    assert_int_equal(select_in_child("no-such-chip", out, sizeof out), 3);
    size_t len = strlen(out), lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += out[i] == '\n';
    assert_true(len > 0 && out[len - 1] == '\n');
    assert_int_equal(lines, 1);
    assert_non_null(strstr(out, "ELBO_CHIP=no-such-chip"));
    print_message("refused: %s", out);
}

/* C of one product into c (m x n), with kern's blocking and AUTO packing policies (what runs in training). */
typedef struct {
    size_t m, n, k;
    elbo_trans ta, tb;
    elbo_dtype da;
    int prepack, epilogue;
} bits_case;

/* Computes every case under kern into out (concatenated C matrices); inputs come from fixed seeds. */
static void run_cases(const elbo_kernels *kern, const bits_case *cases, size_t ncases, float *out)
{
    elbo_gemm_workspace ws;
    assert_int_equal(elbo_gemm_workspace_init(&ws, kern), 0);
    for (size_t s = 0; s < ncases; s++) {
        const bits_case *bc = &cases[s];
        test_rng rng = {1000 + s};
        size_t m = bc->m, n = bc->n, k = bc->k;
        float *a = malloc(m * k * sizeof(float) + 1), *b = malloc(k * n * sizeof(float));
        uint8_t *au = malloc(m * k + 1);
        float *bias = malloc(n * sizeof(float)), *mask = malloc(m * n * sizeof(float));
        test_fill(&rng, a, m * k, -1.0f, 1.0f);
        test_fill(&rng, b, k * n, -1.0f, 1.0f);
        test_fill(&rng, bias, n, -1.0f, 1.0f);
        test_fill(&rng, mask, m * n, -1.0f, 1.0f);
        for (size_t i = 0; i < m * k; i++)
            au[i] = (uint8_t)test_rng_below(&rng, 256);
        size_t lda = bc->ta == ELBO_NOTRANS ? k : m, ldb = bc->tb == ELBO_NOTRANS ? n : k;
        elbo_operand op_a = bc->da == ELBO_DTYPE_U8 ? elbo_operand_u8(au, lda, bc->ta) : elbo_operand_f32(a, lda, bc->ta);
        elbo_operand op_b = elbo_operand_f32(b, ldb, bc->tb);
        elbo_epilogue epi = {.bias = bias, .relu = 1, .relu_mask = mask, .ld_mask = n};
        const elbo_epilogue *e = bc->epilogue ? &epi : NULL;
        if (bc->prepack) {
            elbo_packed_b pb;
            assert_int_equal(elbo_packed_b_alloc(&pb, kern, k, n), 0);
            elbo_pack_b(&pb, op_b);
            elbo_gemm_packed(kern, &ws, m, n, k, 1.0f, op_a, &pb, 0.0f, out, n, e);
            elbo_packed_b_free(&pb);
        } else {
            elbo_gemm(kern, &ws, m, n, k, 1.0f, op_a, op_b, 0.0f, out, n, e);
        }
        out += m * n;
        free(a), free(b), free(au), free(bias), free(mask);
    }
    elbo_gemm_workspace_free(&ws);
}

/* Every config that tunes an ISA table this CPU runs, plus rows with far smaller and larger blocks and the
 * flags flipped (future chips), gives the bits of the table as selected here: K in one and in several blocks,
 * C wider than NC, A transposed (read in place where in_place_trans_a allows), u8 A, prepacked B, epilogues. */
static void test_chip_configs_same_bits(void **state)
{
    (void)state;
    static const bits_case cases[] = {
        {61, 784, 1000, ELBO_NOTRANS, ELBO_NOTRANS, ELBO_DTYPE_F32, 0, 1}, /* three K blocks */
        {128, 400, 784, ELBO_TRANS, ELBO_NOTRANS, ELBO_DTYPE_F32, 0, 0},   /* a weight gradient */
        {13, 4200, 800, ELBO_NOTRANS, ELBO_NOTRANS, ELBO_DTYPE_F32, 0, 0}, /* C wider than NC */
        {64, 400, 784, ELBO_NOTRANS, ELBO_NOTRANS, ELBO_DTYPE_U8, 1, 1},   /* the VAE's first layer */
        {100, 130, 50, ELBO_NOTRANS, ELBO_TRANS, ELBO_DTYPE_F32, 0, 1},
        {200, 40, 401, ELBO_TRANS, ELBO_NOTRANS, ELBO_DTYPE_F32, 1, 0},
        {7, 20, 5, ELBO_NOTRANS, ELBO_NOTRANS, ELBO_DTYPE_F32, 0, 1},
    };
    const size_t ncases = sizeof cases / sizeof cases[0];
    size_t floats = 0;
    for (size_t s = 0; s < ncases; s++)
        floats += cases[s].m * cases[s].n;
    float *ref = malloc(floats * sizeof(float)), *got = malloc(floats * sizeof(float));
    const elbo_kernels *kern;
    for (size_t i = 0; (kern = elbo_kernels_available(i)); i++) {
        if (!isa_arch(kern->isa))
            continue;
        run_cases(kern, cases, ncases, ref);
        const size_t mr = kern->blocking.mr, nr = kern->blocking.nr;
        const elbo_chip_tuning synthetic[] = {
            {kern->isa, 2 * mr, 2 * nr, !kern->blocking.prefetch_next_b, !kern->blocking.in_place_trans_a,
             !kern->blocking.a_panel_outer},
            {kern->isa, 7 * mr, 5 * nr, kern->blocking.prefetch_next_b, !kern->blocking.in_place_trans_a,
             kern->blocking.a_panel_outer},
            {kern->isa, 60 * mr, 300 * nr, !kern->blocking.prefetch_next_b, kern->blocking.in_place_trans_a,
             !kern->blocking.a_panel_outer},
        };
        size_t nconfigs = elbo_chip_count() + sizeof synthetic / sizeof synthetic[0], tried = 0;
        for (size_t c = 0; c < nconfigs; c++) {
            const elbo_chip_config synthetic_chip = {.name = "a synthetic row",
                                                     .arch = isa_arch(kern->isa),
                                                     .tuning = {c < elbo_chip_count() ? synthetic[0]
                                                                                      : synthetic[c - elbo_chip_count()]}};
            const elbo_chip_config *chip = c < elbo_chip_count() ? elbo_chip_at(c) : &synthetic_chip;
            const elbo_chip_tuning *t = elbo_chip_tuning_for(chip, kern->isa);
            if (!t)
                continue;
            char err[512];
            elbo_kernels tuned = *kern;
            if (elbo_chip_apply(chip, &tuned, err, sizeof err) != 0)
                test_failf("%s: %s\n", kern->isa, err);
            run_cases(&tuned, cases, ncases, got);
            tried++;
            const float *r = ref, *g = got;
            for (size_t s = 0; s < ncases; s++) {
                size_t len = cases[s].m * cases[s].n;
                if (memcmp(r, g, len * sizeof(float)) != 0)
                    test_failf("%s under %s (MC=%zu NC=%zu prefetch_next_b=%d in_place_trans_a=%d "
                               "a_panel_outer=%d): case %zu (%zux%zux%zu) differs from the selected config's bits\n",
                               kern->isa, chip->name, t->mc, t->nc, t->prefetch_next_b, t->in_place_trans_a,
                               t->a_panel_outer, s, cases[s].m, cases[s].n, cases[s].k);
                r += len, g += len;
            }
        }
        print_message("%s: %zu configs, same bits\n", kern->isa, tried);
    }
    free(ref), free(got);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        /* First: its children must fork from a process that has not built the kernel tables yet (they read
         * ELBO_CHIP once, when the tables are built). */
        cmocka_unit_test(test_chip_env_forcing),
        cmocka_unit_test(test_chip_configs_valid),    cmocka_unit_test(test_chip_tuning_check_refuses),
        cmocka_unit_test(test_chip_recognize_x86),    cmocka_unit_test(test_chip_recognize_arm64),
        cmocka_unit_test(test_chip_choose),           cmocka_unit_test(test_chip_configs_same_bits),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof tests[0]);
    return cmocka_run_group_tests_name("kernel_chips", tests, NULL, NULL);
}
