/** prctl(2) option numbers from <linux/prctl.h>, shared by the modules that call prctl. */
export const PR_SET_NAME = 15;
export const PR_GET_NAME = 16;
export const PR_SET_CHILD_SUBREAPER = 36;
export const PR_GET_CHILD_SUBREAPER = 37;
