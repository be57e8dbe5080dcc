/* The oneDNN backend's row kernels for any x86-64 (or any CPU): the body
 * compiled with the library's ordinary flags. */
#define ONEDNN_ROW_KERNELS_TABLE onednn_row_kernels_generic
#define ONEDNN_ROW_KERNELS_NAME "generic"
#include "onednn_row_kernels_body.h"
